package ml

// The arithmetic of the package is one kernel: C = A·Bᵀ with A (m×k) and B
// (n×k) row-major, so every inner product runs over two contiguous rows. A
// dense layer stores its weights one row per output unit, so the forward
// pass is A·Wᵀ directly; the backward pass transposes the (small) batch
// matrices and the weights of the upper layers into scratch buffers.
//
// Two block shapes compute the same thing with the same summation order
// (each C[i][j] adds A[i][p]·B[j][p] for p = 0, 1, ..., k-1 into one float32
// accumulator), so they give bit-identical results and the choice between
// them is speed only: 1×4 blocks are fastest in a normal build; 4×4 blocks
// load half as often per multiply-add, which is what counts under the race
// detector, where every load from memory is instrumented.

// mulABt sets C (m×n) to A (m×k) times the transpose of B (n×k).
func mulABt(m, n, k int, a, b, c []float32) {
	if raceEnabled {
		if m*k <= stackFloats && 4*k <= stackFloats {
			mulABtWhole(m, n, k, a, b, c)
			return
		}
		mulABtStack(m, n, k, a, b, c)
		return
	}
	mulABt1x4(m, n, k, a, b, c)
}

// mulABt1x4 computes one row of C four columns at a time.
func mulABt1x4(m, n, k int, a, b, c []float32) {
	for i := 0; i < m; i++ {
		a0 := a[i*k : i*k+k]
		ci := c[i*n : i*n+n]
		j := 0
		for ; j+4 <= n; j += 4 {
			b0 := b[j*k : j*k+k][:len(a0)]
			b1 := b[(j+1)*k : (j+1)*k+k][:len(a0)]
			b2 := b[(j+2)*k : (j+2)*k+k][:len(a0)]
			b3 := b[(j+3)*k : (j+3)*k+k][:len(a0)]
			var s0, s1, s2, s3 float32
			for p, x := range a0 {
				s0 += x * b0[p]
				s1 += x * b1[p]
				s2 += x * b2[p]
				s3 += x * b3[p]
			}
			r := ci[j : j+4]
			r[0], r[1], r[2], r[3] = s0, s1, s2, s3
		}
		for ; j < n; j++ {
			ci[j] = dot(a0, b[j*k:j*k+k])
		}
	}
}

// stackFloats is the size of the two arrays mulABtWhole keeps on its stack.
const stackFloats = 1 << 14

// mulABtWhole is mulABtStack for an A that fits on the stack whole: A is
// copied once, each block of four rows of B once, so the race detector
// checks len(A) + len(B) values in n/4 + 1 ranges.
func mulABtWhole(m, n, k int, a, b, c []float32) {
	var sa, sb [stackFloats]float32
	copy(sa[:m*k], a[:m*k])
	j := 0
	for ; j+4 <= n; j += 4 {
		copy(sb[:4*k], b[j*k:(j+4)*k])
		i := 0
		for ; i+4 <= m; i += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			var c20, c21, c22, c23, c30, c31, c32, c33 float32
			r0, r1, r2, r3 := i*k, (i+1)*k, (i+2)*k, (i+3)*k
			for p := 0; p < k; p++ {
				x0, x1, x2, x3 := sa[r0+p], sa[r1+p], sa[r2+p], sa[r3+p]
				y0, y1, y2, y3 := sb[p], sb[k+p], sb[2*k+p], sb[3*k+p]
				c00 += x0 * y0
				c01 += x0 * y1
				c02 += x0 * y2
				c03 += x0 * y3
				c10 += x1 * y0
				c11 += x1 * y1
				c12 += x1 * y2
				c13 += x1 * y3
				c20 += x2 * y0
				c21 += x2 * y1
				c22 += x2 * y2
				c23 += x2 * y3
				c30 += x3 * y0
				c31 += x3 * y1
				c32 += x3 * y2
				c33 += x3 * y3
			}
			acc := [16]float32{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
			for r := range 4 {
				copy(c[(i+r)*n+j:(i+r)*n+j+4], acc[4*r:4*r+4])
			}
		}
		for ; i < m; i++ {
			var acc [4]float32
			for q := range 4 {
				var s float32
				for p := 0; p < k; p++ {
					s += sa[i*k+p] * sb[q*k+p]
				}
				acc[q] = s
			}
			copy(c[i*n+j:i*n+j+4], acc[:])
		}
	}
	for ; j < n; j++ {
		copy(sb[:k], b[j*k:(j+1)*k])
		for i := 0; i < m; i++ {
			var s float32
			for p := 0; p < k; p++ {
				s += sa[i*k+p] * sb[p]
			}
			c[i*n+j] = s
		}
	}
}

// panel is the length of the row pieces mulABtStack copies to its stack.
const panel = 256

// mulABtStack is the kernel of race-detector builds. The race detector
// instruments every load from the heap, one call each, but checks a copy
// as one range and does not instrument the stack: so the kernel copies
// pieces of four rows of A and four rows of B into arrays on its stack (the
// copies are still checked, as ranges) and multiplies from there. Partial
// sums go through C between pieces, which keeps the summation order, and so
// the result, bit for bit that of mulABt1x4.
func mulABtStack(m, n, k int, a, b, c []float32) {
	var pa, pb [4][panel]float32
	i := 0
	for ; i+4 <= m; i += 4 {
		for p0 := 0; p0 < k; p0 += panel {
			kk := min(panel, k-p0)
			for r := range 4 {
				copy(pa[r][:kk], a[(i+r)*k+p0:(i+r)*k+p0+kk])
			}
			j := 0
			for ; j+4 <= n; j += 4 {
				for r := range 4 {
					copy(pb[r][:kk], b[(j+r)*k+p0:(j+r)*k+p0+kk])
				}
				var acc [16]float32
				if p0 > 0 {
					for r := range 4 {
						copy(acc[4*r:4*r+4], c[(i+r)*n+j:(i+r)*n+j+4])
					}
				}
				c00, c01, c02, c03 := acc[0], acc[1], acc[2], acc[3]
				c10, c11, c12, c13 := acc[4], acc[5], acc[6], acc[7]
				c20, c21, c22, c23 := acc[8], acc[9], acc[10], acc[11]
				c30, c31, c32, c33 := acc[12], acc[13], acc[14], acc[15]
				for p := 0; p < kk; p++ {
					x0, x1, x2, x3 := pa[0][p], pa[1][p], pa[2][p], pa[3][p]
					y0, y1, y2, y3 := pb[0][p], pb[1][p], pb[2][p], pb[3][p]
					c00 += x0 * y0
					c01 += x0 * y1
					c02 += x0 * y2
					c03 += x0 * y3
					c10 += x1 * y0
					c11 += x1 * y1
					c12 += x1 * y2
					c13 += x1 * y3
					c20 += x2 * y0
					c21 += x2 * y1
					c22 += x2 * y2
					c23 += x2 * y3
					c30 += x3 * y0
					c31 += x3 * y1
					c32 += x3 * y2
					c33 += x3 * y3
				}
				acc = [16]float32{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
				for r := range 4 {
					copy(c[(i+r)*n+j:(i+r)*n+j+4], acc[4*r:4*r+4])
				}
			}
			for ; j < n; j++ {
				copy(pb[0][:kk], b[j*k+p0:j*k+p0+kk])
				for r := range 4 {
					var s float32
					if p0 > 0 {
						s = c[(i+r)*n+j]
					}
					for p := 0; p < kk; p++ {
						s += pa[r][p] * pb[0][p]
					}
					c[(i+r)*n+j] = s
				}
			}
		}
	}
	if i < m {
		mulABt1x4(m-i, n, k, a[i*k:], b, c[i*n:])
	}
}

// dot is the inner product of a and b[:len(a)], summed in index order.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s float32
	for p, x := range a {
		s += x * b[p]
	}
	return s
}

// transpose writes the transpose of a (rows×cols) into t (cols×rows).
func transpose(rows, cols int, a, t []float32) {
	t = t[:rows*cols]
	for i := 0; i < rows; i++ {
		ai := a[i*cols : i*cols+cols]
		for j, v := range ai {
			t[j*rows+i] = v
		}
	}
}
