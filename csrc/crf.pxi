# A linear-chain CRF over packed sequences (seqtag.packing): step t holds the rows
# [offset(t), offset(t) + batch_sizes[t]), rank b's row at step t is offset(t) + b, and
# rank b's sequence ends at the last step t with b < batch_sizes[t].
#
# The score of a tag sequence y of length L is
#   start[y_0] + sum_t emissions[t, y_t] + sum_{t>0} transitions[y_{t-1}, y_t] + end[y_{L-1}]
# and the CRF's probability of y is exp(score - log_z), log_z the log of the sum of
# exp(score) over every tag sequence of that length.
#
# Throughout: emissions (N, C), transitions (C, C) indexed [from, to], start and end (C,).

from libc.math cimport INFINITY


# Whether rank b's sequence ends at step t.
cdef inline bint ends_at(const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t t,
                         Py_ssize_t b) noexcept nogil:
    return t + 1 == T or b >= batch_sizes[t + 1]


cdef inline floating log_(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


# x (n,) <- exp(x), in place; float32 in one vector pass (fastmath.h clamps its argument
# to [-87, 87], so a term far below the largest one counts ~1e-38 instead of 0: harmless
# next to the 1 that the largest term contributes after the max is taken out)
cdef inline void exp_block(floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    if floating is float:
        seqtag_exp_f32(x, n)
    else:
        for i in range(n):
            x[i] = exp(x[i])


# out (C,): out[j] = log sum_i exp(a[i] + m[i, j]) with m (C, C) row-major, or, when
# transposed, out[i] = log sum_j exp(m[i, j] + a[j]).  work (C * C + C) scratch.
# Each output takes out its own largest term, so no exponential overflows.
cdef void log_sum_product(floating* out, const floating* a, const floating* m,
                          Py_ssize_t C, bint transposed, floating* work) noexcept nogil:
    cdef Py_ssize_t i, j, k
    cdef floating v, total
    cdef floating* top = work + C * C
    for k in range(C):
        top[k] = -INFINITY
    for i in range(C):
        for j in range(C):
            v = m[i * C + j] + (a[j] if transposed else a[i])
            k = i if transposed else j
            work[i * C + j] = v
            if v > top[k]:
                top[k] = v
    for i in range(C):
        for j in range(C):
            work[i * C + j] -= top[i if transposed else j]
    exp_block(work, C * C)
    for k in range(C):
        total = 0
        for i in range(C):
            total += work[k * C + i] if transposed else work[i * C + k]
        out[k] = top[k] + log_(total)


# out <- log sum_j exp(a[j] + b[j]) over C terms
cdef floating log_sum_pair(const floating* a, const floating* b, Py_ssize_t C,
                           floating* work) noexcept nogil:
    cdef Py_ssize_t j
    cdef floating top = -INFINITY, total = 0
    for j in range(C):
        work[j] = a[j] + b[j]
        if work[j] > top:
            top = work[j]
    for j in range(C):
        work[j] -= top
    exp_block(work, C)
    for j in range(C):
        total += work[j]
    return top + log_(total)


# The forward algorithm in log space.
#   alpha (N, C) <- alpha[row(t, b), j]: log of the summed exp(score) of the prefixes of
#                   rank b's sequence that end in tag j at step t (emissions[t] included)
#   log_z (B,)   <- each rank's log partition
#   work (C * C + C) scratch
cdef void crf_forward_steps(floating* alpha, floating* log_z, const floating* emissions,
                            const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t C,
                            const floating* transitions, const floating* start,
                            const floating* end, floating* work) noexcept nogil:
    cdef Py_ssize_t t, b, j, row, offset = 0, prev_offset = 0
    for t in range(T):
        for b in range(batch_sizes[t]):
            row = (offset + b) * C
            if t == 0:
                for j in range(C):
                    alpha[row + j] = start[j] + emissions[row + j]
            else:
                log_sum_product(alpha + row, alpha + (prev_offset + b) * C, transitions, C,
                                False, work)
                for j in range(C):
                    alpha[row + j] += emissions[row + j]
            if ends_at(batch_sizes, T, t, b):
                log_z[b] = log_sum_pair(alpha + row, end, C, work)
        prev_offset = offset
        offset += batch_sizes[t]


# The gradient of sum_b grad_log_z[b] * log_z[b] (forward-backward: d log_z / d emissions
# are the tag marginals, d log_z / d transitions the summed pair marginals).
#   grad_emissions (N, C) <- written;  grad_transitions (C, C), grad_start, grad_end (C,) +=
#   grad_log_z (B,);  alpha, log_z as crf_forward_steps left them
#   beta (N, C) scratch <- beta[row(t, b), i]: log of the summed exp(score) of the suffixes
#                          after step t given tag i at t (end included)
#   work (C * C + 2 C) scratch
cdef void crf_backward_steps(floating* grad_emissions, floating* grad_transitions,
                             floating* grad_start, floating* grad_end,
                             const floating* grad_log_z, const floating* emissions,
                             const floating* alpha, const floating* log_z,
                             const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t C,
                             const floating* transitions, const floating* end,
                             floating* beta, floating* work) noexcept nogil:
    cdef Py_ssize_t t, b, i, j, row, next_row, offset = total_rows(batch_sizes, T)
    cdef floating g, z
    cdef floating* u = work + C * C + C   # emissions + beta of the next step
    for t in range(T - 1, -1, -1):
        offset -= batch_sizes[t]
        for b in range(batch_sizes[t]):
            row = (offset + b) * C
            g = grad_log_z[b]
            z = log_z[b]
            if ends_at(batch_sizes, T, t, b):
                for j in range(C):
                    beta[row + j] = end[j]
            else:
                next_row = (offset + batch_sizes[t] + b) * C
                for j in range(C):
                    u[j] = emissions[next_row + j] + beta[next_row + j]
                log_sum_product(beta + row, u, transitions, C, True, work)
                # pair marginals p(y_t = i, y_t+1 = j) = exp(alpha_i + trans_ij + u_j - z)
                for i in range(C):
                    for j in range(C):
                        work[i * C + j] = alpha[row + i] + transitions[i * C + j] + u[j] - z
                exp_block(work, C * C)
                for i in range(C * C):
                    grad_transitions[i] += g * work[i]
            for j in range(C):
                work[j] = alpha[row + j] + beta[row + j] - z
            exp_block(work, C)
            for j in range(C):
                grad_emissions[row + j] = g * work[j]
                if t == 0:
                    grad_start[j] += g * work[j]
                if ends_at(batch_sizes, T, t, b):
                    grad_end[j] += g * work[j]


# Viterbi decoding: the best-scoring tag sequence of each rank.
#   tags (N,) <- the best sequence's tag of each packed row;  best (B,) <- its score
#   allowed (C, C), allowed_start, allowed_end (C,): 0 forbids a transition, a first tag,
#   a last tag (NULL: everything allowed); a rank with no allowed sequence scores -inf
#   delta (N, C) scratch <- best score of a prefix ending in each tag
#   back (N, C) scratch <- the previous tag of that best prefix;  last (B,) scratch
cdef void crf_viterbi_steps(int64_t* tags, floating* best, const floating* emissions,
                            const int64_t* batch_sizes, Py_ssize_t T, Py_ssize_t C,
                            const floating* transitions, const floating* start,
                            const floating* end, const unsigned char* allowed,
                            const unsigned char* allowed_start,
                            const unsigned char* allowed_end, floating* delta,
                            int32_t* back, int64_t* last) noexcept nogil:
    cdef Py_ssize_t t, b, i, j, row, prev_row, next_row, offset = 0, prev_offset = 0, arg
    cdef floating v, top
    for t in range(T):
        for b in range(batch_sizes[t]):
            row = (offset + b) * C
            prev_row = (prev_offset + b) * C
            for j in range(C):
                if t == 0:
                    top = start[j] if allowed_start == NULL or allowed_start[j] else -INFINITY
                    arg = 0
                else:
                    top = -INFINITY
                    arg = 0
                    for i in range(C):
                        if allowed != NULL and not allowed[i * C + j]:
                            continue
                        v = delta[prev_row + i] + transitions[i * C + j]
                        if v > top:
                            top = v
                            arg = i
                delta[row + j] = top + emissions[row + j]
                back[row + j] = <int32_t>arg
            if ends_at(batch_sizes, T, t, b):
                top = -INFINITY
                arg = 0
                for j in range(C):
                    if allowed_end != NULL and not allowed_end[j]:
                        continue
                    v = delta[row + j] + end[j]
                    if v > top:
                        top = v
                        arg = j
                best[b] = top
                last[b] = arg
        prev_offset = offset
        offset += batch_sizes[t]
    # back from the last step: a rank takes its best last tag at the step it ends, and the
    # back pointer of the next step's tag before that
    for t in range(T - 1, -1, -1):
        offset -= batch_sizes[t]
        for b in range(batch_sizes[t]):
            if ends_at(batch_sizes, T, t, b):
                tags[offset + b] = last[b]
            else:
                next_row = offset + batch_sizes[t] + b
                tags[offset + b] = back[next_row * C + tags[next_row]]
