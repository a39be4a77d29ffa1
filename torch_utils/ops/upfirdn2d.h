// upfirdn2d: the geometry of one filtered plane, the per-pixel CUDA routine and the CUDA launchers
// (upfirdn2d.cu). No torch headers, so nvcc compiles the .cu files on their own.
#pragma once
#include <cstdint>

namespace upfirdn2d_kernels {

// out[oy][ox] = sum_{ky,kx} k[ky][kx] * up(x)[oy*downy + ky - pady0][ox*downx + kx - padx0], where up(x)
// holds x[i][j] at (i*upy, j*upx) and zeros elsewhere, and k holds the taps in correlation order
// (already flipped for a convolution) with the gain applied.
struct Geometry {
    int in_h, in_w, out_h, out_w;
    int upx, upy, downx, downy;
    int padx0, pady0;
    int fh, fw;
};

// Geometry of a pass with paddings (px0, px1, py0, py1); the caller checks that the output is not empty.
inline Geometry make_geometry(int in_h, int in_w, int fh, int fw, int upx, int upy, int downx, int downy, int px0,
                              int px1, int py0, int py1) {
    Geometry g;
    g.in_h = in_h, g.in_w = in_w, g.fh = fh, g.fw = fw;
    g.upx = upx, g.upy = upy, g.downx = downx, g.downy = downy;
    g.padx0 = px0, g.pady0 = py0;
    g.out_w = (in_w * upx + px0 + px1 - fw) / downx + 1;
    g.out_h = (in_h * upy + py0 + py1 - fh) / downy + 1;
    return g;
}

#ifdef __CUDACC__
// One output pixel of one plane; load(i) returns input element i of the plane as float.
template <typename Load>
__device__ __forceinline__ float pixel(const Geometry& g, const float* k, int oy, int ox, Load load) {
    float acc = 0.f;
    for (int ky = 0; ky < g.fh; ky++) {
        int u = oy * g.downy + ky - g.pady0;
        if (u < 0 || u % g.upy != 0 || u / g.upy >= g.in_h) continue;
        int iy = u / g.upy;
        for (int kx = 0; kx < g.fw; kx++) {
            int v = ox * g.downx + kx - g.padx0;
            if (v < 0 || v % g.upx != 0 || v / g.upx >= g.in_w) continue;
            acc += k[ky * g.fw + kx] * load((int64_t)iy * g.in_w + v / g.upx);
        }
    }
    return acc;
}
#endif

// CUDA launchers (upfirdn2d.cu): `planes` planes of g.in_h x g.in_w -> g.out_h x g.out_w; k is a device
// pointer to g.fh * g.fw float taps. f16 variants take __half data. Return cudaError_t as int.
int launch_f32(const Geometry& g, int64_t planes, const float* x, const float* k, float* y, void* stream);
int launch_f16(const Geometry& g, int64_t planes, const void* x, const float* k, void* y, void* stream);

}  // namespace upfirdn2d_kernels
