// Fused tri-plane volume rendering: the state and the per-ray passes of the CPU kernels
// (volume_render.cpp). One ray at a time: bilinear tri-plane features at every sample, the OSGDecoder
// MLP, compositing and importance sampling (their array maths in volume_render_math.h), and the backward
// pass of all of it. Nothing per sample outlives its ray: a ray's samples live in a small per-thread
// scratch area.
#pragma once
#include <cstdint>

#include "volume_render_math.h"

namespace volume_render_kernels {

struct Params {
    int64_t rays;           // N * R
    int64_t rays_per_item;  // R: ray r samples the planes of batch item r / R
    int channels;           // C: feature channels of one plane
    int height, width;      // of one plane
    int hidden;             // decoder hidden width
    int outputs;            // decoder outputs: 1 density + colour features
    int coarse, fine;       // samples per ray of the two passes (fine may be 0)
    float box_scale;        // 2 / box_warp: the cube [-box_warp/2, box_warp/2]^3 maps onto [-1, 1]
    float noise_strength;   // rendering option density_noise (0 = none)
    int white_back;
    int keep_samples;       // backward: the scratch also keeps every sample's decoder state
    float axes[3][3][2];    // columns 0 and 1 of each plane's inverse axes: point -> plane (x, y)
};

// Read-only inputs. planes are channels-last (N, 3, H, W, C); w1t (C, hidden) and w2t (hidden, outputs)
// are the decoder weights transposed (gains applied), w1 (hidden, C) and w2 (outputs, hidden) the same
// untransposed (the backward's vectorised loops read them). Per-ray arrays are (rays, count).
template <typename T> struct Inputs {
    const T* planes;
    const T *w1t, *b1, *w2t, *b2, *w1, *w2;
    const T *origins, *directions;       // (rays, 3)
    const T* depths_coarse;              // (rays, coarse), sorted along each ray
    const T* noise_coarse;               // (rays, coarse) standard normal, or null
    const T* uniforms;                   // (rays, fine) in [0, 1)
    const T* noise_fine;                 // (rays, fine), or null
    const T* depths_fine;                // backward only: (rays, fine) as the forward drew them
};

// Per-sample decoder state the backward needs: features, hidden pre-activations and activations, outputs.
VR_INLINE int64_t kept_stride(const Params& p) { return (int64_t)p.channels + 2 * (int64_t)p.hidden + p.outputs; }

// Scratch of one thread, in elements, for a ray of coarse + fine samples.
VR_INLINE int64_t scratch_size(const Params& p) {
    const int64_t s = p.coarse + p.fine;
    return s * (p.outputs + 5) + 3 * (int64_t)p.channels + 3 * (int64_t)p.hidden + 2 * (int64_t)p.outputs +
           (p.keep_samples ? s * kept_stride(p) : 0);
}
VR_INLINE int64_t weight_grad_size(const Params& p) {
    return (int64_t)p.channels * p.hidden + p.hidden + (int64_t)p.hidden * p.outputs + p.outputs;
}

template <typename T> struct Scratch {
    T *depth, *sigma, *rgb;      // per sample, in evaluation order: coarse then fine
    T *weight, *trans, *grad;    // per interval of the sorted samples
    T *feat, *dfeat, *hidden, *act, *dhidden, *out, *dout, *tap;
    T* kept;                     // per sample: kept_stride values (backward only; null in the forward)
    int* order;                  // sample indices sorted by depth
    VR_INLINE Scratch(const Params& p, T* base, int* order_base) {
        const int s = p.coarse + p.fine;
        depth = base; sigma = depth + s; rgb = sigma + s; weight = rgb + (int64_t)s * (p.outputs - 1);
        trans = weight + s; grad = trans + s; feat = grad + s; dfeat = feat + p.channels;
        tap = dfeat + p.channels; hidden = tap + p.channels; act = hidden + p.hidden; dhidden = act + p.hidden;
        out = dhidden + p.hidden; dout = out + p.outputs;
        kept = p.keep_samples ? dout + p.outputs : nullptr;
        order = order_base;
    }
};

// Plane coordinates (u, v) of sample point `point` (already scaled by box_scale) in plane q.
template <typename T> VR_INLINE void plane_coords(const Params& p, int q, const T* point, T& u, T& v) {
    u = point[0] * T(p.axes[q][0][0]) + point[1] * T(p.axes[q][1][0]) + point[2] * T(p.axes[q][2][0]);
    v = point[0] * T(p.axes[q][0][1]) + point[1] * T(p.axes[q][1][1]) + point[2] * T(p.axes[q][2][1]);
}

template <typename T> VR_INLINE void sample_point(const Params& p, const Inputs<T>& in, int64_t ray, T depth, T* point) {
    for (int a = 0; a < 3; a++)
        point[a] = T(p.box_scale) * (in.origins[ray * 3 + a] + depth * in.directions[ray * 3 + a]);
}

template <typename T> VR_INLINE const T* item_planes(const Params& p, const Inputs<T>& in, int64_t ray) {
    return in.planes + (ray / p.rays_per_item) * 3 * (int64_t)p.height * p.width * p.channels;
}

// Decoder at one sample: s.feat (mean of the three planes' features), s.hidden (pre-activation),
// s.act (activation) and s.out (raw outputs); eval_sample keeps them for the backward.
template <typename T> VR_INLINE void decode_sample(const Params& p, const Inputs<T>& in, int64_t ray, T depth, Scratch<T>& s) {
    const int C = p.channels, H = p.hidden, O = p.outputs;
    const T* planes = item_planes(p, in, ray);
    T point[3];
    sample_point(p, in, ray, depth, point);
    for (int c = 0; c < C; c++) s.feat[c] = T(0);
    for (int q = 0; q < 3; q++) {
        T u, v;
        plane_coords(p, q, point, u, v);
        const Taps<T> taps(p.width, p.height, p.channels, u, v);
        const T* plane = planes + q * (int64_t)p.height * p.width * C;
        for (int c = 0; c < C; c++) s.tap[c] = T(0);
        for (int k = 0; k < 4; k++) {
            if (taps.o[k] < 0) continue;
            const T* f = plane + taps.o[k];
            const T wk = taps.w[k];
            for (int c = 0; c < C; c++) s.tap[c] += wk * f[c];
        }
        for (int c = 0; c < C; c++) s.feat[c] += s.tap[c];
    }
    for (int c = 0; c < C; c++) s.feat[c] /= T(3);
    for (int k = 0; k < H; k++) s.hidden[k] = in.b1[k];
    for (int c = 0; c < C; c++) {
        const T x = s.feat[c];
        const T* w = in.w1t + (int64_t)c * H;
        for (int k = 0; k < H; k++) s.hidden[k] += x * w[k];
    }
    for (int k = 0; k < H; k++) s.act[k] = softplus(s.hidden[k]);  // a loop of its own: it vectorises
    for (int o = 0; o < O; o++) s.out[o] = in.b2[o];
    for (int k = 0; k < H; k++) {
        const T h = s.act[k];
        const T* w = in.w2t + (int64_t)k * O;
        for (int o = 0; o < O; o++) s.out[o] += h * w[o];
    }
}

// Decodes sample j of a ray (depth d, standard-normal noise value or null) into s.sigma[j], s.rgb row j.
template <typename T> VR_INLINE void eval_sample(const Params& p, const Inputs<T>& in, int64_t ray, int j, T d,
                                             const T* noise, Scratch<T>& s) {
    decode_sample(p, in, ray, d, s);
    if (s.kept) {
        T* k = s.kept + j * kept_stride(p);
        for (int c = 0; c < p.channels; c++) k[c] = s.feat[c];
        k += p.channels;
        for (int h = 0; h < p.hidden; h++) k[h] = s.hidden[h];
        k += p.hidden;
        for (int h = 0; h < p.hidden; h++) k[h] = s.act[h];
        k += p.hidden;
        for (int o = 0; o < p.outputs; o++) k[o] = s.out[o];
    }
    s.depth[j] = d;
    s.sigma[j] = noise ? s.out[0] + *noise * T(p.noise_strength) : s.out[0];
    T* rgb = s.rgb + (int64_t)j * (p.outputs - 1);
    for (int c = 1; c < p.outputs; c++) rgb[c - 1] = sigmoid(s.out[c]) * T(1 + 2 * kSigmoidWidening) - T(kSigmoidWidening);
}

// Evaluates every sample of a ray (the coarse ones, then the fine ones: drawn from the coarse weights
// in the forward, read from in.depths_fine in the backward), sorts them and computes the compositing
// weights. Returns the sample count; coarse_weights_out / fine_out (may be null) receive the coarse
// pass's weights and the fine depths.
template <typename T> VR_INLINE int eval_ray(const Params& p, const Inputs<T>& in, int64_t ray, Scratch<T>& s,
                                         T* coarse_weights_out, T* fine_out, T& total) {
    const int S1 = p.coarse, S2 = p.fine;
    for (int j = 0; j < S1; j++)
        eval_sample(p, in, ray, j, in.depths_coarse[ray * S1 + j], in.noise_coarse ? in.noise_coarse + ray * S1 + j : nullptr, s);
    const bool draw_fine = S2 > 0 && !in.depths_fine;
    if (coarse_weights_out || draw_fine) {
        for (int j = 0; j < S1; j++) s.order[j] = j;  // coarse depths come sorted
        composite_weights(S1, s.order, s.depth, s.sigma, s.weight, s.trans);
        if (coarse_weights_out)
            for (int i = 0; i + 1 < S1; i++) coarse_weights_out[ray * (S1 - 1) + i] = s.weight[i];
    }
    if (S2 > 0) {
        const T* fine = draw_fine ? fine_out + ray * S2 : in.depths_fine + ray * S2;
        if (draw_fine)
            importance_depths(S1, S2, s.depth, s.weight, in.uniforms + ray * S2, s.grad, fine_out + ray * S2);
        for (int k = 0; k < S2; k++)
            eval_sample(p, in, ray, S1 + k, fine[k], in.noise_fine ? in.noise_fine + ray * S2 + k : nullptr, s);
    }
    const int n = S1 + S2;
    sort_by_depth(n, s.depth, s.order);
    total = composite_weights(n, s.order, s.depth, s.sigma, s.weight, s.trans);
    return n;
}

// Forward of one ray: composite colour rgb (outputs-1), depth (NaN where the weights sum to 0, clamped
// by the caller over the whole batch) and weight sum.
template <typename T> VR_INLINE void forward_ray(const Params& p, const Inputs<T>& in, int64_t ray, Scratch<T>& s,
                                             T* rgb_out, T* depth_out, T* weight_sum_out, T* coarse_weights_out,
                                             T* fine_out) {
    const int Cc = p.outputs - 1;
    T total;
    const int n = eval_ray(p, in, ray, s, coarse_weights_out, fine_out, total);
    T* rgb = rgb_out + ray * Cc;
    for (int c = 0; c < Cc; c++) rgb[c] = T(0);
    T depth = T(0);
    for (int i = 0; i + 1 < n; i++) {
        const int a = s.order[i], b = s.order[i + 1];
        const T w = s.weight[i];
        const T* ca = s.rgb + (int64_t)a * Cc;
        const T* cb = s.rgb + (int64_t)b * Cc;
        for (int c = 0; c < Cc; c++) rgb[c] += w * ((ca[c] + cb[c]) / T(2));
        depth += w * ((s.depth[a] + s.depth[b]) / T(2));
    }
    for (int c = 0; c < Cc; c++) rgb[c] = (p.white_back ? rgb[c] + T(1) - total : rgb[c]) * T(2) - T(1);
    depth_out[ray] = depth / total;
    weight_sum_out[ray] = total;
}

// Gradient accumulators of one thread: the decoder's (layout of weight_grad_size) and the planes'
// (channels-last like the input).
template <typename T> struct Grads {
    T *w1t, *b1, *w2t, *b2;
    T* planes;  // null: the planes need no gradient
    VR_INLINE Grads(const Params& p, T* decoder, T* planes_grad) {
        w1t = decoder; b1 = w1t + (int64_t)p.channels * p.hidden; w2t = b1 + p.hidden; b2 = w2t + (int64_t)p.hidden * p.outputs;
        planes = planes_grad;
    }
};

// Backward of one ray given the gradients of its outputs (rgb row, depth, weight sum); needs a scratch
// that keeps the samples (p.keep_samples).
template <typename T> VR_INLINE void backward_ray(const Params& p, const Inputs<T>& in, int64_t ray, Scratch<T>& s,
                                                  const T* grad_rgb, T grad_depth, T grad_total, Grads<T>& g) {
    const int Cc = p.outputs - 1, C = p.channels, H = p.hidden, O = p.outputs;
    T total;
    const int n = eval_ray<T>(p, in, ray, s, nullptr, nullptr, total);
    T depth = T(0);
    for (int i = 0; i + 1 < n; i++) depth += s.weight[i] * ((s.depth[s.order[i]] + s.depth[s.order[i + 1]]) / T(2));
    depth /= total;
    // Colour = (sum_i w_i cmid_i [+ 1 - total]) * 2 - 1: dL/dw_i and, per interval, d(density_mid) in s.grad.
    const bool has_depth = total > T(0) && grad_depth != T(0);
    for (int i = 0; i + 1 < n; i++) {
        const int a = s.order[i], b = s.order[i + 1];
        const T* ca = s.rgb + (int64_t)a * Cc;
        const T* cb = s.rgb + (int64_t)b * Cc;
        T gw = grad_total;
        for (int c = 0; c < Cc; c++) gw += T(2) * grad_rgb[c] * ((ca[c] + cb[c]) / T(2) - (p.white_back ? T(1) : T(0)));
        if (has_depth) gw += grad_depth * ((s.depth[a] + s.depth[b]) / T(2) - depth) / total;
        s.grad[i] = gw;
    }
    // w_i = alpha_i * prod_{j<i} t_j with t_j = 1 - alpha_j + 1e-10. With B_i = sum_{k>=i} gw_k alpha_k
    // prod_{i<=j<k} t_j (a suffix recurrence, no division): dL/dalpha_i = trans_i * (gw_i - B_{i+1}).
    T suffix = T(0);
    for (int i = n - 2; i >= 0; i--) {
        const int a = s.order[i], b = s.order[i + 1];
        const T delta = s.depth[b] - s.depth[a];
        const T mid = (s.sigma[a] + s.sigma[b]) / T(2) - T(1);
        const T density = softplus(mid);
        const T decay = exp(-density * delta);
        const T alpha = T(1) - decay;
        const T galpha = s.trans[i] * (s.grad[i] - suffix);
        suffix = s.grad[i] * alpha + (T(1) - alpha + T(kTransmittanceFloor)) * suffix;
        const T dsoft = mid > T(20) ? T(1) : sigmoid(mid);
        s.grad[i] = galpha * decay * delta * dsoft;  // now dL/d(mean of the two raw densities)
    }
    // Per sample: gradients of its raw density and colours, then back through the decoder and the planes.
    for (int i = 0; i < n; i++) {
        const int j = s.order[i];
        const T w_prev = i > 0 ? s.weight[i - 1] : T(0), w_next = i + 1 < n ? s.weight[i] : T(0);
        const T g_prev = i > 0 ? s.grad[i - 1] : T(0), g_next = i + 1 < n ? s.grad[i] : T(0);
        const T color_weight = (w_prev + w_next) / T(2) * T(2);
        const T* feat = s.kept + j * kept_stride(p);
        const T *hidden = feat + C, *act = hidden + H, *out = act + H;
        s.dout[0] = (g_prev + g_next) / T(2);
        for (int c = 1; c < O; c++) {
            const T sg = sigmoid(out[c]);
            s.dout[c] = grad_rgb[c - 1] * color_weight * T(1 + 2 * kSigmoidWidening) * sg * (T(1) - sg);
        }
        for (int o = 0; o < O; o++) g.b2[o] += s.dout[o];
        for (int k = 0; k < H; k++) s.dhidden[k] = T(0);
        for (int o = 0; o < O; o++) {
            const T d = s.dout[o];
            const T* w = in.w2 + (int64_t)o * H;
            for (int k = 0; k < H; k++) s.dhidden[k] += d * w[k];
        }
        for (int k = 0; k < H; k++) {
            T* gw = g.w2t + (int64_t)k * O;
            const T a = act[k];
            for (int o = 0; o < O; o++) gw[o] += a * s.dout[o];
        }
        for (int k = 0; k < H; k++) s.dhidden[k] *= hidden[k] > T(20) ? T(1) : sigmoid(hidden[k]);
        for (int k = 0; k < H; k++) g.b1[k] += s.dhidden[k];
        for (int c = 0; c < C; c++) {
            const T x = feat[c];
            T* gw = g.w1t + (int64_t)c * H;
            for (int k = 0; k < H; k++) gw[k] += x * s.dhidden[k];
        }
        if (!g.planes) continue;
        for (int c = 0; c < C; c++) s.dfeat[c] = T(0);
        for (int k = 0; k < H; k++) {
            const T d = s.dhidden[k];
            const T* w = in.w1 + (int64_t)k * C;
            for (int c = 0; c < C; c++) s.dfeat[c] += d * w[c];
        }
        for (int c = 0; c < C; c++) s.dfeat[c] /= T(3);  // the mean over the planes
        T point[3];
        sample_point(p, in, ray, s.depth[j], point);
        T* planes = g.planes + (ray / p.rays_per_item) * 3 * (int64_t)p.height * p.width * C;
        for (int q = 0; q < 3; q++) {
            T u, v;
            plane_coords(p, q, point, u, v);
            const Taps<T> taps(p.width, p.height, p.channels, u, v);
            T* plane = planes + q * (int64_t)p.height * p.width * C;
            for (int k = 0; k < 4; k++) {
                if (taps.o[k] < 0) continue;
                T* f = plane + taps.o[k];
                const T wk = taps.w[k];
                for (int c = 0; c < C; c++) f[c] += wk * s.dfeat[c];
            }
        }
    }
}

}  // namespace volume_render_kernels
