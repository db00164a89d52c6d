// Command mkfashion writes the Fashion-MNIST subset that ml/datasets
// embeds: 20,000 training images (2,000 per class) and 2,000 test images
// (200 per class), chosen with fixed seeds and downsampled to 14×14 by 2×2
// averaging (see package subset for the exact rules). Run it from the
// repository root after `apt-get install dataset-fashion-mnist`:
//
//	go run ./ml/datasets/internal/mkfashion
//
// Its output is byte-identical from run to run; TestFashionSubsetRegenerates
// checks that the embedded files hold exactly what this program produces.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/datasets/internal/subset"
)

func main() {
	src := flag.String("src", datasets.FashionMNISTDir, "directory of the four gzipped Fashion-MNIST IDX files")
	out := flag.String("out", "ml/datasets/data", "directory to write the subset into")
	flag.Parse()
	if err := run(*src, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkfashion:", err)
		os.Exit(1)
	}
}

func run(src, out string) error {
	files, err := subset.Build(src)
	if err != nil {
		return err
	}
	for i, raw := range files {
		gz, err := subset.Gzip(raw)
		if err != nil {
			return fmt.Errorf("compress %s: %w", subset.Files[i], err)
		}
		path := filepath.Join(out, subset.Files[i])
		if err := os.WriteFile(path, gz, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %d bytes (%d uncompressed)\n", path, len(gz), len(raw))
	}
	return nil
}
