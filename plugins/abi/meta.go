package abi

import "fmt"

// The plugin kinds of ABI v1.
const (
	KindMiner      = "HardExampleMiner"
	KindAggregator = "Aggregator"
)

// Manifest is what a module's manifest export returns: the plugins it holds.
// One module may hold several plugins; calls name the one they mean.
type Manifest struct {
	ABI     int          `msgpack:"abi" json:"abi"`
	Plugins []PluginInfo `msgpack:"plugins" json:"plugins"`
}

// PluginInfo describes one plugin of a module.
type PluginInfo struct {
	Name        string  `msgpack:"name" json:"name"`
	Kind        string  `msgpack:"kind" json:"kind"`
	Version     string  `msgpack:"version" json:"version"`
	Description string  `msgpack:"description" json:"description,omitempty"`
	Parameters  []Param `msgpack:"parameters" json:"parameters"`
	// Capabilities the plugin asks for beyond pure computation ("clock",
	// "random", "env", "fs"); the host grants them only where its
	// configuration allows.
	Capabilities []string `msgpack:"capabilities" json:"capabilities,omitempty"`
}

// Param is one parameter with its default, as Sedna writes them: strings.
type Param struct {
	Key         string `msgpack:"key" json:"key"`
	Default     string `msgpack:"default" json:"default"`
	Description string `msgpack:"description" json:"description,omitempty"`
}

// AppendManifest encodes m as msgpack.
func AppendManifest(b []byte, m Manifest) []byte {
	b = AppendMap(b, 2)
	b = AppendString(b, "abi")
	b = AppendInt(b, int64(m.ABI))
	b = AppendString(b, "plugins")
	b = AppendArray(b, len(m.Plugins))
	for _, p := range m.Plugins {
		b = AppendMap(b, 6)
		b = AppendString(b, "name")
		b = AppendString(b, p.Name)
		b = AppendString(b, "kind")
		b = AppendString(b, p.Kind)
		b = AppendString(b, "version")
		b = AppendString(b, p.Version)
		b = AppendString(b, "description")
		b = AppendString(b, p.Description)
		b = AppendString(b, "parameters")
		b = AppendArray(b, len(p.Parameters))
		for _, q := range p.Parameters {
			b = AppendMap(b, 3)
			b = AppendString(b, "key")
			b = AppendString(b, q.Key)
			b = AppendString(b, "default")
			b = AppendString(b, q.Default)
			b = AppendString(b, "description")
			b = AppendString(b, q.Description)
		}
		b = AppendString(b, "capabilities")
		b = AppendArray(b, len(p.Capabilities))
		for _, c := range p.Capabilities {
			b = AppendString(b, c)
		}
	}
	return b
}

// Request is the metadata of a call, as the host sends it.
type Request struct {
	// Plugin names the plugin of the module.
	Plugin string
	// Params holds every parameter of the plugin: the caller's values over
	// the manifest's defaults, in the manifest's order.
	Params []KV
	// Seed varies per call, for plugins that draw random numbers (a guest's
	// own randomness is deterministic per instance).
	Seed uint64
	// Round is the federated-learning round of an aggregate call.
	Round int64
}

// KV is a parameter value.
type KV struct{ Key, Value string }

// Param returns the value of key, or "".
func (r *Request) Param(key string) string {
	for _, kv := range r.Params {
		if kv.Key == key {
			return kv.Value
		}
	}
	return ""
}

// AppendRequest encodes r as msgpack.
func AppendRequest(b []byte, r Request) []byte {
	b = AppendMap(b, 4)
	b = AppendString(b, "plugin")
	b = AppendString(b, r.Plugin)
	b = AppendString(b, "params")
	b = AppendMap(b, len(r.Params))
	for _, kv := range r.Params {
		b = AppendString(b, kv.Key)
		b = AppendString(b, kv.Value)
	}
	b = AppendString(b, "seed")
	b = AppendUint(b, r.Seed)
	b = AppendString(b, "round")
	return AppendInt(b, r.Round)
}

// ParseRequest decodes a request's metadata; unknown keys are skipped.
func ParseRequest(meta []byte) (Request, error) {
	var req Request
	r := NewReader(meta)
	n, err := r.MapLen()
	if err != nil {
		return req, fmt.Errorf("request metadata: %w", err)
	}
	for range n {
		key, err := r.Bytes()
		if err != nil {
			return req, fmt.Errorf("request metadata: %w", err)
		}
		switch string(key) {
		case "plugin":
			req.Plugin, err = r.String()
		case "seed":
			req.Seed, err = r.Uint()
		case "round":
			req.Round, err = r.Int()
		case "params":
			var m int
			if m, err = r.MapLen(); err == nil {
				req.Params = make([]KV, 0, m)
				for range m {
					var kv KV
					if kv.Key, err = r.String(); err != nil {
						break
					}
					if kv.Value, err = r.String(); err != nil {
						break
					}
					req.Params = append(req.Params, kv)
				}
			}
		default:
			err = r.Skip()
		}
		if err != nil {
			return req, fmt.Errorf("request metadata %q: %w", key, err)
		}
	}
	return req, nil
}

// Reason says why sample Index of a batch was judged invalid (and so "not
// hard").
type Reason struct {
	Index  int
	Reason string
}

// AppendResponse encodes a response's metadata: an error (empty when the
// call worked), per-sample reasons, and string metadata.
func AppendResponse(b []byte, errText string, reasons []Reason, meta []KV) []byte {
	n := 0
	if errText != "" {
		n++
	}
	if len(reasons) > 0 {
		n++
	}
	if len(meta) > 0 {
		n++
	}
	b = AppendMap(b, n)
	if errText != "" {
		b = AppendString(b, "error")
		b = AppendString(b, errText)
	}
	if len(reasons) > 0 {
		b = AppendString(b, "reasons")
		b = AppendArray(b, len(reasons))
		for _, r := range reasons {
			b = AppendArray(b, 2)
			b = AppendInt(b, int64(r.Index))
			b = AppendString(b, r.Reason)
		}
	}
	if len(meta) > 0 {
		b = AppendString(b, "metadata")
		b = AppendMap(b, len(meta))
		for _, kv := range meta {
			b = AppendString(b, kv.Key)
			b = AppendString(b, kv.Value)
		}
	}
	return b
}
