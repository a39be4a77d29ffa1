// upfirdn2d on the CPU, one plane at a time.
// Only the taps that meet a non-zero sample of the upsampled image are evaluated (polyphase), so
// upsampling by 2 with a 4x4 filter costs 4 multiply-adds per output pixel instead of 16.
#pragma once
#include <algorithm>
#include <vector>

#include "upfirdn2d.h"

namespace upfirdn2d_kernels {

inline int floor_div(int a, int b) { return (a >= 0) ? a / b : -((-a + b - 1) / b); }

// Input rows that feed one output row, each with its own taps (one row of a 2-D filter).
template <typename T> struct RowSet {
    const T** rows;
    const T** k;
    int count;
};

// out[o] = sum_r sum_j k[r][j] * up(rows[r])[o*down + j - pad0] for one output row of n_out samples
// (n_in samples per input row). buf needs max(n_in, n_out) elements.
template <typename T>
inline void filter_rows(const RowSet<T>& set, int n_in, T* out, int n_out, int taps, int up, int down, int pad0, T* buf) {
    std::fill(out, out + n_out, T(0));
    if (down == 1) {
        // Polyphase: outputs o = ph + up*m of one phase ph read input m + shift through the taps
        // j = ph - pad0 (mod up). Accumulate each phase contiguously (vectorises), then interleave.
        for (int ph = 0; ph < std::min(up, n_out); ph++) {
            const int n_m = (n_out - ph + up - 1) / up;
            T* acc = up == 1 ? out : buf;
            if (up != 1) std::fill(acc, acc + n_m, T(0));
            for (int j = ((pad0 - ph) % up + up) % up; j < taps; j += up) {
                const int shift = (ph + j - pad0) / up;  // Exact: ph + j - pad0 is a multiple of up.
                const int m_lo = std::max(0, -shift), m_hi = std::min(n_m, n_in - shift);
                for (int r = 0; r < set.count; r++) {
                    const T w = set.k[r][j];
                    const T* x = set.rows[r];
                    for (int m = m_lo; m < m_hi; m++) acc[m] += w * x[m + shift];
                }
            }
            if (up != 1)
                for (int m = 0; m < n_m; m++) out[ph + up * m] = acc[m];
        }
    } else if (up == 1) {
        // Output o reads input o*down + j - pad0 = phase q = (j - pad0) mod down, element o + (j - pad0) div down.
        // De-interleave each input row into its phases so that every tap is a contiguous multiply-add.
        for (int r = 0; r < set.count; r++) {
            const T* x = set.rows[r];
            for (int q = 0, start = 0; q < down; q++) {
                for (int i = q, t = start; i < n_in; i += down, t++) buf[t] = x[i];
                start += std::max(0, (n_in - q + down - 1) / down);
            }
            for (int j = 0; j < taps; j++) {
                const int d = j - pad0, q = ((d % down) + down) % down, shift = floor_div(d, down);
                int start = 0;
                for (int p = 0; p < q; p++) start += std::max(0, (n_in - p + down - 1) / down);
                const int len = std::max(0, (n_in - q + down - 1) / down);
                const int o_lo = std::max(0, -shift), o_hi = std::min(n_out, len - shift);
                const T w = set.k[r][j];
                const T* phase = buf + start;
                for (int o = o_lo; o < o_hi; o++) out[o] += w * phase[o + shift];
            }
        }
    } else {
        for (int o = 0; o < n_out; o++) {
            T acc = T(0);
            for (int j = 0; j < taps; j++) {
                const int v = o * down + j - pad0;
                if (v < 0 || v % up != 0 || v / up >= n_in) continue;
                for (int r = 0; r < set.count; r++) acc += set.k[r][j] * set.rows[r][v / up];
            }
            out[o] = acc;
        }
    }
}

// The input row that output row oy meets through vertical tap ky, or -1.
inline int source_row(const Geometry& g, int oy, int ky) {
    int u = oy * g.downy + ky - g.pady0;
    if (u < 0 || u % g.upy != 0 || u / g.upy >= g.in_h) return -1;
    return u / g.upy;
}

// One plane with a non-separable (fh x fw) filter k; buf needs max(g.in_w, g.out_w) elements.
template <typename T> void plane_2d(const Geometry& g, const T* x, const T* k, T* y, T* buf) {
    std::vector<const T*> rows(g.fh), taps(g.fh);
    for (int oy = 0; oy < g.out_h; oy++) {
        RowSet<T> set{rows.data(), taps.data(), 0};
        for (int ky = 0; ky < g.fh; ky++) {
            const int iy = source_row(g, oy, ky);
            if (iy < 0) continue;
            rows[set.count] = x + (int64_t)iy * g.in_w;
            taps[set.count++] = k + ky * g.fw;
        }
        filter_rows(set, g.in_w, y + (int64_t)oy * g.out_w, g.out_w, g.fw, g.upx, g.downx, g.padx0, buf);
    }
}

// One plane with a separable filter: kx (fw taps) along rows, then ky (fh taps) along columns.
// tmp must hold g.in_h * g.out_w elements, buf max(g.in_w, g.out_w).
template <typename T>
void plane_separable(const Geometry& g, const T* x, const T* kx, const T* ky, T* y, T* tmp, T* buf) {
    for (int iy = 0; iy < g.in_h; iy++) {
        const T* row = x + (int64_t)iy * g.in_w;
        RowSet<T> set{&row, &kx, 1};
        filter_rows(set, g.in_w, tmp + (int64_t)iy * g.out_w, g.out_w, g.fw, g.upx, g.downx, g.padx0, buf);
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

// The input column that output column ox meets through horizontal tap kx, or -1.
inline int source_col(const Geometry& g, int ox, int kx) {
    int v = ox * g.downx + kx - g.padx0;
    if (v < 0 || v % g.upx != 0 || v / g.upx >= g.in_w) return -1;
    return v / g.upx;
}

// One output row oy of a channels-last (NHWC) image: x is one image (g.in_h x g.in_w x channels), y its
// output row (g.out_w x channels), k all fh*fw taps. Every output pixel sums its taps over whole channel
// vectors (contiguous, vectorised), horizontal taps outer and vertical inner as filter_rows does.
template <typename T>
void row_channels_last(const Geometry& g, int64_t channels, const T* x, const T* k, int oy, T* y) {
    for (int ox = 0; ox < g.out_w; ox++) {
        T* out = y + (int64_t)ox * channels;
        std::fill(out, out + channels, T(0));
        for (int kx = 0; kx < g.fw; kx++) {
            const int ix = source_col(g, ox, kx);
            if (ix < 0) continue;
            for (int ky = 0; ky < g.fh; ky++) {
                const int iy = source_row(g, oy, ky);
                if (iy < 0) continue;
                const T w = k[ky * g.fw + kx];
                const T* src = x + ((int64_t)iy * g.in_w + ix) * channels;
                for (int64_t c = 0; c < channels; c++) out[c] += w * src[c];
            }
        }
    }
}

// One upfirdn2d pass, ready to run on any number of planes of its geometry.
template <typename T> struct Pass {
    Geometry g;
    bool separable;
    std::vector<T> k, ky;  // 2-D: all fh*fw taps in k. Separable: k along rows, ky (with the gain) along columns.

    // f: fw float32 taps (separable) or fh*fw (2-D), as given to upfirdn2d.
    Pass(const Geometry& geometry, const float* f, bool is_separable, bool flip_filter, double gain)
        : g(geometry), separable(is_separable) {
        k = prepare_taps<T>(f, separable ? g.fw : g.fh * g.fw, flip_filter, separable ? 1.0 : gain);
        if (separable) ky = prepare_taps<T>(f, g.fh, flip_filter, gain);
    }

    // All fh*fw taps of the 2-D filter (a separable one expanded), with the gain: for channels-last images.
    std::vector<T> taps_2d() const {
        if (!separable) return k;
        std::vector<T> k2(g.fh * g.fw);
        for (int y = 0; y < g.fh; y++)
            for (int x = 0; x < g.fw; x++) k2[y * g.fw + x] = ky[y] * k[x];
        return k2;
    }

    // Filters one plane (g.in_h x g.in_w -> g.out_h x g.out_w); tmp and buf are per-thread scratch space.
    void run(const T* src, T* dst, std::vector<T>& tmp, std::vector<T>& buf) const {
        buf.resize((size_t)std::max(g.in_w, g.out_w));
        if (separable) {
            tmp.resize((size_t)g.in_h * g.out_w);
            plane_separable(g, src, k.data(), ky.data(), dst, tmp.data(), buf.data());
        } else {
            plane_2d(g, src, k.data(), dst, buf.data());
        }
    }
};

}  // namespace upfirdn2d_kernels
