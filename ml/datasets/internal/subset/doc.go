// Package subset builds the Fashion-MNIST subset that ml/datasets ships:
// a seeded, class-balanced choice of images, each downsampled from 28×28 to
// 14×14 by 2×2 averaging, written as gzipped IDX files. The program
// ml/datasets/internal/mkfashion runs it; a test of ml/datasets runs it too
// and checks that the result equals the shipped files.
package subset
