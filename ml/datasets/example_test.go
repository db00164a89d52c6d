package datasets_test

import (
	"fmt"

	"github.com/sedna-go/sedna/ml/datasets"
)

// Load the embedded data sets, hold out a stratified quarter of the digits,
// and pool the Fashion images to 7×7 for a small edge model.
func Example() {
	digits, err := datasets.Digits()
	if err != nil {
		fmt.Println(err)
		return
	}
	train, test, _ := digits.Split(0.25, 1)
	fmt.Println(digits.Rows, "digits:", train.Rows, "to train,", test.Rows, "to test")

	fTrain, fTest, err := datasets.FashionSubset()
	if err != nil {
		fmt.Println(err)
		return
	}
	small, _ := fTest.Pool(2)
	fmt.Printf("fashion: %d + %d images of %d×%d, pooled to %d×%d; class 9 is %q\n",
		fTrain.Rows, fTest.Rows, fTest.Width, fTest.Height, small.Width, small.Height, fTest.Classes[9])
	// Output:
	// 1797 digits: 1346 to train, 451 to test
	// fashion: 20000 + 2000 images of 14×14, pooled to 7×7; class 9 is "Ankle boot"
}
