package simulator

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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
//             with KubeEdge's JSON, carried by the default bridge rules;
//   twin      a KubeEdge device twin, round trip: the device reports its
//             actual state on $hw/events/device/default/{id}/twin/update;
//             the cloud (the counter, as a cloud app would) answers each
//             report with a desired state on the node's
//             $hw/events/device/default/{id}/twin/update/delta, through the
//             downlink; the device, with a persistent session on its
//             node's broker, takes it. A delta that never arrives is lost.
// Every message carries its device's sequence number and send time, so the
// counter tells lost from duplicated whatever the kind.

// Data says what camera devices show and how it is shared between nodes.
type Data struct {
	Dataset string  `json:"dataset"` // digits (default), fashion
	Split   string  `json:"split"`   // iid (default), dirichlet, shards
	Alpha   float64 `json:"alpha"`   // dirichlet; default 0.5
	Shards  int     `json:"shards"`  // label shards per node; default 2
}

var kinds = map[string]bool{"sensor": true, "camera": true, "comfort": true, "kubeedge": true, "twin": true}

// twinID is a twin device's KubeEdge device ID (namespace default).
func twinID(node, dev string) string { return "default/" + node + "-" + dev }

// twinTopic is where twin device dev of node reports (suffix "") or gets
// its deltas (suffix "/delta"), on the node's broker.
func twinTopic(node, dev, suffix string) string {
	return topics.KubeEdgeTwinUpdate(twinID(node, dev), suffix)
}

// twinDelta is the desired state the cloud sends in answer to report seq
// (its event ID is the report's, so the device can match them).
func twinDelta(eventID string, seq int64) []byte {
	v := strconv.FormatInt(seq, 10)
	js, _ := json.Marshal(map[string]any{
		"event_id":  eventID,
		"timestamp": time.Now().UnixMilli(),
		"twin": map[string]any{"setpoint": map[string]any{
			"expected": map[string]any{"value": v}, "metadata": map[string]any{"type": "Updated"}}},
		"delta": map[string]any{"setpoint": v},
	})
	return js
}

// eventSeq reads the sequence number and send time from a KubeEdge
// event ID of the simulator's ("seq-nanos").
func eventSeq(payload []byte) (string, int64, time.Time, bool) {
	var m struct {
		EventID string `json:"event_id"`
	}
	if json.Unmarshal(payload, &m) != nil {
		return "", 0, time.Time{}, false
	}
	a, b, found := strings.Cut(m.EventID, "-")
	s, err1 := strconv.ParseInt(a, 10, 64)
	ns, err2 := strconv.ParseInt(b, 10, 64)
	if !found || err1 != nil || err2 != nil || s < 0 {
		return "", 0, time.Time{}, false
	}
	return m.EventID, s, time.Unix(0, ns), true
}

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
	fd.share, err = split(s, fd.images)
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
		return topics.KubeEdgeDataUpdate(node + "-" + dev), js
	case "twin":
		js, _ := json.Marshal(map[string]any{
			"event_id":  fmt.Sprintf("%d-%d", seq, now.UnixNano()),
			"timestamp": now.UnixMilli(),
			"twin": map[string]any{"setpoint": map[string]any{
				"actual": map[string]any{"value": strconv.FormatInt(seq-1, 10)}, "metadata": map[string]any{"type": "Updated"}}},
		})
		return twinTopic(node, dev, ""), js
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
		_, seq, sent, ok = eventSeq(payload)
		return node, dev, seq, sent, ok
	case strings.HasPrefix(p.Rest, "kubeedge/$hw/events/device/default/") && strings.HasSuffix(p.Rest, "/twin/update"):
		id := strings.TrimSuffix(strings.TrimPrefix(p.Rest, "kubeedge/$hw/events/device/default/"), "/twin/update")
		dev = strings.TrimPrefix(id, node+"-")
		_, seq, sent, ok = eventSeq(payload)
		return node, dev, seq, sent, ok
	}
	return
}

// writeDataFiles writes the scenario's data set as CSV Datasets in dir:
// the held-out fifth as validation.csv, the rest shared between the nodes
// as the scenario's split says, {node}.csv each.
func writeDataFiles(s *Scenario, dir string) error {
	train, test, share, err := shares(s)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeCSV(filepath.Join(dir, "validation.csv"), test, nil); err != nil {
		return err
	}
	for i, rows := range share {
		if err := writeCSV(filepath.Join(dir, s.NodeName(i)+".csv"), train, rows); err != nil {
			return err
		}
	}
	return nil
}

// shares are the scenario's data set split: the training part, the
// held-out fifth, and each node's rows of the training part.
func shares(s *Scenario) (train, test *datasets.Dataset, share [][]int, err error) {
	var all *datasets.Dataset
	switch s.Data.Dataset {
	case "", "digits":
		all, err = datasets.Digits()
	case "fashion":
		all, _, err = datasets.FashionSubset()
	default:
		err = fmt.Errorf("data.dataset %q: want digits or fashion", s.Data.Dataset)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	if train, test, err = all.Split(0.2, s.Seed+1); err != nil {
		return nil, nil, nil, err
	}
	share, err = split(s, train)
	return train, test, share, err
}

// split shares d's rows between the scenario's nodes.
func split(s *Scenario, d *datasets.Dataset) ([][]int, error) {
	n := s.Nodes.Count
	switch s.Data.Split {
	case "", "iid":
		return partition.IID(d.Rows, n, s.Seed)
	case "dirichlet":
		a := s.Data.Alpha
		if a == 0 {
			a = 0.5
		}
		return partition.Dirichlet(d.Y, n, a, s.Seed)
	case "shards":
		k := s.Data.Shards
		if k == 0 {
			k = 2
		}
		return partition.Shards(d.Y, n, k, s.Seed)
	}
	return nil, fmt.Errorf("data.split %q: want iid, dirichlet or shards", s.Data.Split)
}

// writeCSV writes rows of d (all when rows is nil): a header, then
// label,features... per row.
func writeCSV(path string, d *datasets.Dataset, rows []int) error {
	if rows == nil {
		rows = make([]int, d.Rows)
		for i := range rows {
			rows[i] = i
		}
	}
	var b bytes.Buffer
	b.WriteString("label")
	for j := range d.Cols {
		fmt.Fprintf(&b, ",f%d", j)
	}
	b.WriteByte('\n')
	for _, i := range rows {
		b.WriteString(strconv.Itoa(d.Y[i]))
		for _, v := range d.Row(i) {
			b.WriteByte(',')
			b.WriteString(strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		b.WriteByte('\n')
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
