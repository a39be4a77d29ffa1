// Fused tri-plane volume rendering, the per-ray maths on plain arrays (volume_render.h holds the state
// and the passes): the reference's constants, the decoder's activations (with float versions that
// vectorise), grid_sample's bilinear taps, MipRayMarcher2's compositing weights, EG3D's importance
// sampling and the depth sort.
#pragma once
#include <cmath>
#include <cstdint>

#define VR_INLINE inline __attribute__((always_inline))

namespace volume_render_kernels {

using std::exp;  // float and double overloads
using std::floor;
using std::log1p;

// The reference's Python constants, rounded to T where used (as torch rounds a scalar operand).
constexpr double kSigmoidWidening = 0.001;  // OSGDecoder: sigmoid * (1 + 2 * 0.001) - 0.001
constexpr double kTransmittanceFloor = 1e-10;  // MipRayMarcher2: cumprod of (1 - alpha + 1e-10)
constexpr double kPdfEps = 1e-5;  // sample_pdf's eps
constexpr double kWeightFloor = 0.01;  // sample_importance: weights + 0.01

template <typename T> VR_INLINE T softplus(T x) { return x > T(20) ? x : log1p(exp(x)); }  // torch's threshold 20
template <typename T> VR_INLINE T sigmoid(T x) { return T(1) / (T(1) + exp(-x)); }

// Float exp and softplus without libm calls, so that the loops over a sample's 64 hidden units and
// 32 features vectorise (libm's log1pf alone took half the CPU time). Both are within 2 ulp of libm.
inline float exp_vec(float x) {
    const float c = x < -87.3f ? -87.3f : (x > 88.3f ? 88.3f : x);  // finite 2^n below
    const float n = floor(c * 1.44269504088896341f + 0.5f);  // x = n ln2 + r, |r| <= ln2 / 2
    const float r = (c - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in two for an exact product
    float p = 1.9875691500e-4f;  // Cephes' expf polynomial
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = p * r * r + r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    __builtin_memcpy(&scale, &bits, sizeof(scale));
    return x != x ? x : e * scale;
}

// log(1 + e) for e in [0, 1]: 2 atanh(z) with z = e / (2 + e) <= 1/3, its odd series to z^15.
inline float log1p_unit(float e) {
    const float z = e / (2.0f + e), z2 = z * z;
    float p = 1.0f / 15;
    p = p * z2 + 1.0f / 13;
    p = p * z2 + 1.0f / 11;
    p = p * z2 + 1.0f / 9;
    p = p * z2 + 1.0f / 7;
    p = p * z2 + 1.0f / 5;
    p = p * z2 + 1.0f / 3;
    return 2.0f * z * (p * z2 + 1.0f);
}

// softplus(x) = max(x, 0) + log(1 + exp(-|x|)); equals x past torch's threshold of 20 in float.
template <> inline float softplus<float>(float x) {
    const float a = x < 0.0f ? -x : x;
    return (x > 0.0f ? x : 0.0f) + log1p_unit(exp_vec(-a));
}
template <> inline float sigmoid<float>(float x) { return 1.0f / (1.0f + exp_vec(-x)); }

// The four bilinear taps of grid_sample(align_corners=False, padding_mode='zeros') at plane
// coordinates (u, v) in [-1, 1] of a channels-last (height, width, channels) plane: tap k (nw, ne, sw,
// se) has weight w[k] and element offset o[k] (offset < 0: outside the plane, contributes 0).
template <typename T> struct Taps {
    T w[4];
    int64_t o[4];
    VR_INLINE Taps(int width, int height, int channels, T u, T v) {
        const T x = (u + T(1)) * (T(width) / T(2)) - T(0.5);
        const T y = (v + T(1)) * (T(height) / T(2)) - T(0.5);
        const T x0 = floor(x), y0 = floor(y);
        const T fx = x - x0, fy = y - y0;
        w[0] = (T(1) - fy) * (T(1) - fx); w[1] = (T(1) - fy) * fx; w[2] = fy * (T(1) - fx); w[3] = fy * fx;
        for (int k = 0; k < 4; k++) {
            const T xi = x0 + T(k & 1), yi = y0 + T(k >> 1);
            const bool inside = xi >= T(0) && xi < T(width) && yi >= T(0) && yi < T(height);
            o[k] = inside ? ((int64_t)yi * width + (int64_t)xi) * channels : -1;
        }
    }
};

// Compositing weights of the intervals between consecutive samples order[0..n-1] (MipRayMarcher2), given
// each sample's depth and raw density sigma: weight[i] = alpha_i * trans_i, trans_out[i] the
// transmittance before interval i. Returns their sum.
template <typename T> VR_INLINE T composite_weights(int n, const int* order, const T* depth, const T* sigma, T* weight,
                                                    T* trans_out) {
    T trans = T(1), total = T(0);
    for (int i = 0; i + 1 < n; i++) {
        const int a = order[i], b = order[i + 1];
        const T delta = depth[b] - depth[a];
        const T density = softplus((sigma[a] + sigma[b]) / T(2) - T(1));
        const T alpha = T(1) - exp(-density * delta);
        trans_out[i] = trans;
        weight[i] = alpha * trans;
        total += weight[i];
        trans = trans * (T(1) - alpha + T(kTransmittanceFloor));
    }
    return total;
}

// Importance samples (sample_importance + sample_pdf) from the coarse weights weight[0..coarse-2] over
// the coarse depths depth[0..coarse-1] and `fine` uniforms in [0, 1); writes `fine` depths to out.
// cdf: scratch of coarse - 2 elements.
template <typename T> VR_INLINE void importance_depths(int coarse, int fine, const T* depth, const T* weight,
                                                       const T* uniforms, T* cdf, T* out) {
    const int S = coarse, bins = S - 3;  // EG3D's pdf runs over the smoothed weights 1 .. S-3
    const T* w = weight;
    // max_pool1d(2, stride 1, padding 1) then avg_pool1d(2, stride 1), + 0.01, + eps.
    auto smoothed = [&](int i) {
        const T left = i == 0 ? w[0] : (w[i - 1] > w[i] ? w[i - 1] : w[i]);
        const T right = i + 1 == S - 1 ? w[S - 2] : (w[i] > w[i + 1] ? w[i] : w[i + 1]);
        return (left + right) / T(2) + T(kWeightFloor) + T(kPdfEps);
    };
    T total = T(0);
    for (int b = 0; b < bins; b++) total += smoothed(b + 1);
    cdf[0] = T(0);
    T running = T(0);
    for (int b = 0; b < bins; b++) {
        running += smoothed(b + 1) / total;
        cdf[b + 1] = running;
    }
    for (int k = 0; k < fine; k++) {
        const T u = uniforms[k];
        int above = 0;  // searchsorted(right=True): the number of cdf entries <= u
        while (above <= bins && cdf[above] <= u) above++;
        const int below = above - 1 > 0 ? above - 1 : 0;
        above = above < bins ? above : bins;
        T denom = cdf[above] - cdf[below];
        denom = denom < T(kPdfEps) ? T(1) : denom;
        // Bin edges are the coarse mid-points.
        const T lo = (depth[below] + depth[below + 1]) / T(2);
        const T hi = (depth[above] + depth[above + 1]) / T(2);
        out[k] = lo + (u - cdf[below]) / denom * (hi - lo);
    }
}

// order[0..n-1] = 0..n-1 sorted by depth (stable insertion sort: n is at most a few hundred).
template <typename T> VR_INLINE void sort_by_depth(int n, const T* depth, int* order) {
    for (int i = 0; i < n; i++) {
        const int idx = i;
        int j = i;
        while (j > 0 && depth[order[j - 1]] > depth[idx]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = idx;
    }
}

}  // namespace volume_render_kernels
