package cloudlink

import (
	"strings"
	"testing"
)

func TestSplitAMQPURLs(t *testing.T) {
	got, err := SplitAMQPURLs(" amqp://a:5672, amqps://u:p@b:5671 ,")
	if err != nil || len(got) != 2 || got[0] != "amqp://a:5672" || got[1] != "amqps://u:p@b:5671" {
		t.Fatalf("SplitAMQPURLs = %q, %v", got, err)
	}
	for _, bad := range []string{"", ",", "tcp://a:1883", "amqp://", "amqp://u:secret@:5672"} {
		_, err := SplitAMQPURLs(bad)
		if err == nil {
			t.Errorf("%q accepted", bad)
		} else if strings.Contains(err.Error(), "secret") {
			t.Errorf("%q: the error shows the password: %v", bad, err)
		}
	}
}
