package simulator

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sedna-go/sedna/ml/comfort"
	"github.com/sedna-go/sedna/ml/datasets"
	"github.com/sedna-go/sedna/ml/partition"
	"github.com/sedna-go/sedna/topics"
)

// The device kinds:
//   sensor    a reading of Size bytes;
//   camera    a frame: an image of the scenario's data set, from the node's
//             share of it (Data.Split);
//   comfort   a thermal-comfort reading (conditions, vote, preference) of the
//             node's task (tasks are shared out by attribute);
//   kubeedge  a KubeEdge device's data update, $ke/events/device/{id}/data/update
//             with KubeEdge's JSON, carried by the default bridge rules.
// Every message carries its device's sequence number and send time, so the
// counter tells lost from duplicated whatever the kind.

// Data says what camera devices show and how it is shared between nodes.
type Data struct {
	Dataset string  `json:"dataset"` // digits (default), fashion
	Split   string  `json:"split"`   // iid (default), dirichlet, shards
	Alpha   float64 `json:"alpha"`   // dirichlet; default 0.5
	Shards  int     `json:"shards"`  // label shards per node; default 2
}

var kinds = map[string]bool{"sensor": true, "camera": true, "comfort": true, "kubeedge": true}

// fleetData is what the devices of each node draw from.
type fleetData struct {
	images *datasets.Dataset
	share  [][]int // by node: rows of images
	tasks  []comfort.Task
}

func loadData(s *Scenario) (*fleetData, error) {
	fd := &fleetData{tasks: comfort.Tasks()}
	need := false
	for _, d := range s.Devices {
		need = need || d.Kind == "camera"
	}
	if !need {
		return fd, nil
	}
	var err error
	switch s.Data.Dataset {
	case "", "digits":
		fd.images, err = datasets.Digits()
	case "fashion":
		fd.images, _, err = datasets.FashionSubset()
	default:
		return nil, fmt.Errorf("data.dataset %q: want digits or fashion", s.Data.Dataset)
	}
	if err != nil {
		return nil, err
	}
	n := s.Nodes.Count
	switch s.Data.Split {
	case "", "iid":
		fd.share, err = partition.IID(fd.images.Rows, n, s.Seed)
	case "dirichlet":
		a := s.Data.Alpha
		if a == 0 {
			a = 0.5
		}
		fd.share, err = partition.Dirichlet(fd.images.Y, n, a, s.Seed)
	case "shards":
		k := s.Data.Shards
		if k == 0 {
			k = 2
		}
		fd.share, err = partition.Shards(fd.images.Y, n, k, s.Seed)
	default:
		return nil, fmt.Errorf("data.split %q: want iid, dirichlet or shards", s.Data.Split)
	}
	return fd, err
}

func header(seq int64, now time.Time, size int) []byte {
	b := make([]byte, 16, max(size, 16))
	binary.BigEndian.PutUint64(b, uint64(seq))
	binary.BigEndian.PutUint64(b[8:], uint64(now.UnixNano()))
	return b
}

// message makes device d's message number seq on node i.
func (fd *fleetData) message(node string, i int, kind, dev string, qos int, seq int64, size int) (string, []byte) {
	now := time.Now()
	topic := "sim/" + dev
	if qos == 0 {
		topic = "sim0/" + dev
	}
	switch kind {
	case "camera":
		b := header(seq, now, 0)
		if share := fd.share[i]; len(share) > 0 {
			for _, v := range fd.images.Row(share[int(seq)%len(share)]) {
				b = append(b, byte(min(255, v*255/max(1, maxOf(fd.images)))))
			}
		}
		return topic, b
	case "comfort":
		t := fd.tasks[i%len(fd.tasks)]
		samples, err := comfort.Generate(t, 1, uint64(seq)*7919+uint64(i))
		if err != nil || len(samples) == 0 {
			return topic, header(seq, now, 16)
		}
		js, _ := json.Marshal(map[string]any{"task": t.Name(), "features": samples[0].Features(), "preference": samples[0].Preference})
		return topic, append(header(seq, now, 0), js...)
	case "kubeedge":
		js, _ := json.Marshal(map[string]any{
			"event_id":  fmt.Sprintf("%d-%d", seq, now.UnixNano()),
			"timestamp": now.UnixMilli(),
			"data": map[string]any{"temperature": map[string]any{"value": strconv.FormatFloat(20+float64(seq%50)/10, 'f', 1, 64),
				"metadata": map[string]any{"type": "float", "timestamp": now.UnixMilli()}}},
		})
		return "$ke/events/device/" + node + "-" + dev + "/data/update", js
	}
	b := header(seq, now, size)
	return topic, b[:size]
}

func maxOf(d *datasets.Dataset) float32 {
	if d.Name == "digits" {
		return 16
	}
	return 1
}

// parse reads a counted message: the device, its sequence number and send
// time (ok is false for anything else).
func parseCounted(topic string, payload []byte) (node, dev string, seq int64, sent time.Time, ok bool) {
	p, err := topics.Parse(topic)
	if err != nil {
		return
	}
	node = p.Node
	switch {
	case strings.HasPrefix(p.Rest, "app/sim/") || strings.HasPrefix(p.Rest, "app/sim0/"):
		if len(payload) < 16 {
			return
		}
		dev = strings.TrimPrefix(strings.TrimPrefix(p.Rest, "app/sim/"), "app/sim0/")
		return node, dev, int64(binary.BigEndian.Uint64(payload)), time.Unix(0, int64(binary.BigEndian.Uint64(payload[8:]))), true
	case strings.HasPrefix(p.Rest, "kubeedge/$ke/events/device/"):
		id := strings.TrimSuffix(strings.TrimPrefix(p.Rest, "kubeedge/$ke/events/device/"), "/data/update")
		dev = strings.TrimPrefix(id, node+"-")
		var m struct {
			EventID string `json:"event_id"`
		}
		if json.Unmarshal(payload, &m) != nil {
			return
		}
		a, b, found := strings.Cut(m.EventID, "-")
		s, err1 := strconv.ParseInt(a, 10, 64)
		ns, err2 := strconv.ParseInt(b, 10, 64)
		if !found || err1 != nil || err2 != nil {
			return
		}
		return node, dev, s, time.Unix(0, ns), true
	}
	return
}
