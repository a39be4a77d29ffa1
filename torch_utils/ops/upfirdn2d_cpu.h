// upfirdn2d on the CPU, one plane at a time: shared by the upfirdn2d and filtered_lrelu plugins.
// Only the taps that meet a non-zero sample of the upsampled image are evaluated (polyphase), so
// upsampling by 2 with a 4x4 filter costs 4 multiply-adds per output pixel instead of 16.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "upfirdn2d.h"

namespace upfirdn2d_kernels {

inline int floor_div(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

// out[o] += sum_j k[j] * up(x)[o*down + j - pad0] for one row (n_in samples -> n_out samples).
template <typename T>
inline void row_accumulate(const T* x, int n_in, T* out, int n_out, const T* k, int taps, int up, int down, int pad0) {
    for (int j = 0; j < taps; j++) {
        const T w = k[j];
        if (down == 1) {
            // Outputs o = o0 + up*m read input x0 + m.
            int o0 = ((pad0 - j) % up + up) % up;
            int x0 = (o0 + j - pad0) / up;
            int m_lo = std::max(0, -x0);
            int m_hi = std::min(n_in - x0, (n_out - o0 + up - 1) / up);
            if (up == 1) {
                for (int m = m_lo; m < m_hi; m++) out[o0 + m] += w * x[x0 + m];
            } else {
                for (int m = m_lo; m < m_hi; m++) out[o0 + m * up] += w * x[x0 + m];
            }
        } else if (up == 1) {
            // Output o reads input o*down + j - pad0.
            int o_lo = std::max(0, floor_div(pad0 - j + down - 1, down));
            int o_hi = std::min(n_out, floor_div(n_in - 1 + pad0 - j, down) + 1);
            for (int o = o_lo; o < o_hi; o++) out[o] += w * x[o * down + j - pad0];
        } else {
            for (int o = 0; o < n_out; o++) {
                int v = o * down + j - pad0;
                if (v >= 0 && v % up == 0 && v / up < n_in) out[o] += w * x[v / up];
            }
        }
    }
}

// The input row that output row oy meets through vertical tap ky, or -1.
inline int source_row(const Geometry& g, int oy, int ky) {
    int u = oy * g.downy + ky - g.pady0;
    if (u < 0 || u % g.upy != 0 || u / g.upy >= g.in_h) return -1;
    return u / g.upy;
}

// One plane with a non-separable (fh x fw) filter k.
template <typename T> void plane_2d(const Geometry& g, const T* x, const T* k, T* y) {
    for (int oy = 0; oy < g.out_h; oy++) {
        T* row = y + (int64_t)oy * g.out_w;
        std::fill(row, row + g.out_w, T(0));
        for (int ky = 0; ky < g.fh; ky++) {
            int iy = source_row(g, oy, ky);
            if (iy >= 0)
                row_accumulate(x + (int64_t)iy * g.in_w, g.in_w, row, g.out_w, k + ky * g.fw, g.fw, g.upx, g.downx, g.padx0);
        }
    }
}

// One plane with a separable filter: kx (fw taps) along rows, then ky (fh taps) along columns.
// tmp must hold g.in_h * g.out_w elements.
template <typename T> void plane_separable(const Geometry& g, const T* x, const T* kx, const T* ky, T* y, T* tmp) {
    for (int iy = 0; iy < g.in_h; iy++) {
        T* row = tmp + (int64_t)iy * g.out_w;
        std::fill(row, row + g.out_w, T(0));
        row_accumulate(x + (int64_t)iy * g.in_w, g.in_w, row, g.out_w, kx, g.fw, g.upx, g.downx, g.padx0);
    }
    for (int oy = 0; oy < g.out_h; oy++) {
        T* row = y + (int64_t)oy * g.out_w;
        std::fill(row, row + g.out_w, T(0));
        for (int t = 0; t < g.fh; t++) {
            int iy = source_row(g, oy, t);
            if (iy < 0) continue;
            const T w = ky[t];
            const T* src = tmp + (int64_t)iy * g.out_w;
            for (int o = 0; o < g.out_w; o++) row[o] += w * src[o];
        }
    }
}

// Taps in correlation order (flipped unless flip_filter) times gain, converted to T.
template <typename T> std::vector<T> prepare_taps(const float* f, int n, bool flip_filter, double gain) {
    std::vector<T> k(n);
    for (int i = 0; i < n; i++) k[i] = T(f[flip_filter ? i : n - 1 - i] * gain);
    return k;
}

}  // namespace upfirdn2d_kernels
