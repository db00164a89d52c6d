package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// Resource is one document: a Sedna resource with its typed spec.
type Resource struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   ObjectMeta `json:"metadata"`
	// Spec points to the kind's spec type (*DatasetSpec, *ModelSpec, ...).
	Spec any `json:"spec"`
	// Ignored lists the fields present in the document that Sedna-Go keeps
	// but does not use, as paths such as
	// "spec.edgeWorker.template.spec.containers[0].resources".
	Ignored []string `json:"-"`
	// Unknown lists the fields present that Sedna's CRDs do not define
	// (a typo, or a field of another API), a subset of Ignored: `sedna
	// apply` warns about each, and refuses them with --strict.
	Unknown []string `json:"-"`
	// Source is the document as JSON, verbatim.
	Source json.RawMessage `json:"-"`
	// Origin says where the document came from ("file.yaml#2").
	Origin string `json:"-"`
}

// Key names the resource uniquely: kind/namespace/name.
func (r *Resource) Key() string { return r.Kind + "/" + r.Metadata.Namespace + "/" + r.Metadata.Name }

// FieldError is a problem with one field, named by its path.
type FieldError struct {
	Field   string
	Message string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// FieldErrors are every problem found in a document.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "; ")
}

// ErrInvalid is wrapped by parse and validation errors.
var ErrInvalid = errors.New("invalid resource")

// ErrUnsupportedKind is wrapped, with ErrInvalid, by the error of a
// document of one of SednaOnlyKinds.
var ErrUnsupportedKind = errors.New("kind not supported yet")

func newSpec(kind string) any {
	switch kind {
	case KindDataset:
		return &DatasetSpec{}
	case KindModel:
		return &ModelSpec{}
	case KindJointInferenceService:
		return &JointInferenceServiceSpec{}
	case KindIncrementalLearningJob:
		return &IncrementalLearningJobSpec{}
	case KindFederatedLearningJob:
		return &FederatedLearningJobSpec{}
	case KindLifelongLearningJob:
		return &LifelongLearningJobSpec{}
	}
	return nil
}

// UnknownKind says why kind is not one Sedna-Go runs: one of Sedna's
// kinds it does not run yet (matched as a user types it: "reidjob",
// "ReidJobs"), or not a kind at all.
func UnknownKind(kind string) string {
	for _, k := range SednaOnlyKinds {
		if l := strings.ToLower(kind); l == strings.ToLower(k) || l == strings.ToLower(k)+"s" {
			return fmt.Sprintf("%s is a Sedna kind that Sedna-Go does not run yet (it runs %s)", k, strings.Join(Kinds, ", "))
		}
	}
	return fmt.Sprintf("unknown kind %q (known: %s)", kind, strings.Join(Kinds, ", "))
}

// ParseFiles reads files and directories (every *.yaml, *.yml and *.json in
// them, sorted) into resources.
func ParseFiles(paths ...string) ([]*Resource, error) {
	var out []*Resource
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		files := []string{p}
		if st.IsDir() {
			files = nil
			entries, err := os.ReadDir(p)
			if err != nil {
				return nil, err
			}
			for _, e := range entries {
				switch filepath.Ext(e.Name()) {
				case ".yaml", ".yml", ".json":
					if !e.IsDir() {
						files = append(files, filepath.Join(p, e.Name()))
					}
				}
			}
			sort.Strings(files)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				return nil, err
			}
			rs, err := Parse(b, f)
			if err != nil {
				return nil, err
			}
			out = append(out, rs...)
		}
	}
	return out, nil
}

// Parse reads every document of a multi-document YAML (or JSON) text. name
// labels errors. Empty documents are skipped.
func Parse(data []byte, name string) ([]*Resource, error) {
	var out []*Resource
	for i, doc := range splitDocuments(data) {
		origin := fmt.Sprintf("%s#%d", name, i+1)
		r, err := ParseDocument(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", origin, err)
		}
		if r == nil {
			continue
		}
		r.Origin = origin
		out = append(out, r)
	}
	return out, nil
}

// splitDocuments cuts at lines that are "---" (optionally followed by a
// space and a comment). Lines may be of any length: a document is never
// cut short (a line scanner with a limit once dropped the rest of a file
// after a 17 MiB line, without a word).
func splitDocuments(data []byte) [][]byte {
	var docs [][]byte
	start := 0 // of the current document
	for off := 0; off < len(data); {
		end := bytes.IndexByte(data[off:], '\n')
		next := len(data)
		if end >= 0 {
			next = off + end + 1
			end += off
		} else {
			end = len(data)
		}
		line := bytes.TrimSuffix(data[off:end], []byte("\r"))
		if string(line) == "---" || bytes.HasPrefix(line, []byte("--- ")) || bytes.HasPrefix(line, []byte("---\t")) {
			docs = append(docs, data[start:off])
			start = next
		}
		off = next
	}
	return append(docs, data[start:])
}

// ParseDocument reads one document; nil, nil for an empty one.
func ParseDocument(doc []byte) (*Resource, error) {
	js, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	js = bytes.TrimSpace(js)
	if len(js) == 0 || string(js) == "null" {
		return nil, nil
	}
	var generic map[string]any
	if err := json.Unmarshal(js, &generic); err != nil {
		return nil, fmt.Errorf("%w: a resource is a mapping: %v", ErrInvalid, err)
	}
	var head struct {
		APIVersion string          `json:"apiVersion"`
		Kind       string          `json:"kind"`
		Metadata   ObjectMeta      `json:"metadata"`
		Spec       json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal(js, &head); err != nil {
		return nil, fieldError(err, "")
	}
	r := &Resource{APIVersion: head.APIVersion, Kind: head.Kind, Metadata: head.Metadata, Source: js}
	if r.Metadata.Namespace == "" {
		r.Metadata.Namespace = "default"
	}
	if r.APIVersion != APIVersion {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, FieldError{"apiVersion", fmt.Sprintf("%q is not %s", r.APIVersion, APIVersion)})
	}
	r.Spec = newSpec(r.Kind)
	if r.Spec == nil && slices.Contains(SednaOnlyKinds, r.Kind) {
		return nil, fmt.Errorf("%w: %w: %v", ErrInvalid, ErrUnsupportedKind, FieldError{"kind", UnknownKind(r.Kind)})
	}
	if r.Spec == nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, FieldError{"kind", UnknownKind(r.Kind)})
	}
	if len(head.Spec) > 0 && string(head.Spec) != "null" {
		if err := json.Unmarshal(head.Spec, r.Spec); err != nil {
			return nil, fieldError(err, "spec.")
		}
	}
	typed, _ := json.Marshal(r)
	var used map[string]any
	_ = json.Unmarshal(typed, &used)
	r.Ignored = ignored("", generic, used)
	sort.Strings(r.Ignored)
	r.Unknown = unknownFields(r.Kind, generic)
	return r, nil
}

// fieldError turns a JSON type error into one that names the field.
func fieldError(err error, prefix string) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("%w: %v", ErrInvalid, FieldError{prefix + te.Field, fmt.Sprintf("a %s where a %s is wanted", te.Value, te.Type)})
	}
	return fmt.Errorf("%w: %v", ErrInvalid, err)
}

// ignored lists the paths of doc that used lacks.
func ignored(prefix string, doc, used any) []string {
	var out []string
	switch d := doc.(type) {
	case map[string]any:
		u, _ := used.(map[string]any)
		for k, v := range d {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			uv, ok := u[k]
			if !ok {
				out = append(out, p)
				continue
			}
			out = append(out, ignored(p, v, uv)...)
		}
	case []any:
		u, _ := used.([]any)
		for i, v := range d {
			p := prefix + "[" + strconv.Itoa(i) + "]"
			if i >= len(u) {
				out = append(out, p)
				continue
			}
			out = append(out, ignored(p, v, u[i])...)
		}
	}
	return out
}
