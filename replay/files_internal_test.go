package replay

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// decodeAll runs decode over in and returns the records it emitted, each
// compacted, and the problems it reported.
func decodeAll(t *testing.T, in io.Reader) ([]string, []Problem) {
	t.Helper()
	var got []string
	var problems []Problem
	n, err := decode(context.Background(), "in", in, func(idx int64, v []byte) error {
		if idx != int64(len(got)) {
			t.Errorf("record %d emitted with index %d", len(got), idx)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, v); err != nil {
			b.Reset()
			b.Write(v) // not JSON: the mapping's to dead-letter
		}
		got = append(got, b.String())
		return nil
	}, func(p Problem) { problems = append(problems, p) })
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if n != int64(len(got)) {
		t.Errorf("decode counted %d records, emitted %d", n, len(got))
	}
	return got, problems
}

func TestDecodeJSONArrays(t *testing.T) {
	msgs := []string{`{"type":"track","messageId":"m0"}`, `{"type":"page","messageId":"m1"}`, `{"type":"identify","messageId":"m2"}`}
	compact := "[" + strings.Join(msgs, ",") + "]"
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(compact), "", "  "); err != nil {
		t.Fatal(err)
	}
	zip := func(s string) string {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(s))
		zw.Close()
		return b.String()
	}
	for _, tc := range []struct {
		name, in string
		want     []string
	}{
		// json.dump of a list, JSON.stringify of an array, jq -c .
		{"compact array on one line", compact + "\n", msgs},
		{"compact array without a newline", compact, msgs},
		{"pretty-printed array", pretty.String(), msgs},
		{"byte order mark and blank lines first", "\xef\xbb\xbf\n\n  " + compact, msgs},
		{"gzip-compressed compact array", zip(compact), msgs},
		{"array then more values", compact + "\n" + `[{"a":1}]` + "\n" + `{"b":2}`, append(msgs[:3:3], `{"a":1}`, `{"b":2}`)},
		{"empty array", "[]", nil},
		{"array elements that are not objects", `[1,"x",{"a":1}]`, []string{`1`, `"x"`, `{"a":1}`}},
		// Unchanged: one record per line, whatever the line holds.
		{"NDJSON", strings.Join(msgs, "\n") + "\n", msgs},
		{"NDJSON with an array line", msgs[0] + "\n" + `[1,2]` + "\n" + msgs[1] + "\n", []string{msgs[0], `[1,2]`, msgs[1]}},
		{"pretty-printed objects", "{\n  \"a\": 1\n}\n{\n  \"b\": 2\n}\n", []string{`{"a":1}`, `{"b":2}`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, problems := decodeAll(t, strings.NewReader(tc.in))
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("records %q, want %q", got, tc.want)
			}
			if len(problems) != 0 {
				t.Errorf("problems: %v", problems)
			}
		})
	}
}

// An array cut short (a truncated download, a full disk) is reported, and
// what came before the cut is replayed; the replay goes on.
func TestDecodeTruncatedArray(t *testing.T) {
	for _, in := range []string{"[", "[\n", `[{"a":1},`, `[{"a":1}`, `[{"a":1},{"b":`} {
		got, problems := decodeAll(t, strings.NewReader(in))
		want := []string{`{"a":1}`}
		if !strings.Contains(in, "a") {
			want = nil
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%q: records %q, want %q", in, got, want)
		}
		if len(problems) != 1 || !errors.Is(problems[0].Err, io.ErrUnexpectedEOF) {
			t.Errorf("%q: problems %v, want one for the document cut short", in, problems)
		}
	}
}

// countingReader counts the bytes read from r.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// A whole-file array is read an element at a time: an archive exported as
// one JSON array, many times MaxRecordBytes, is replayed in the memory of
// one element, not of the file.
func TestDecodeStreamsALargeArray(t *testing.T) {
	elem := `{"type":"track","event":"Order Completed","messageId":"m","properties":{"pad":"` + strings.Repeat("x", 900) + `"}}`
	n := 2*MaxRecordBytes/len(elem) + 1
	parts := make([]io.Reader, 0, 2*n+1)
	parts = append(parts, strings.NewReader("["))
	for i := range n {
		if i > 0 {
			parts = append(parts, strings.NewReader(","))
		}
		parts = append(parts, strings.NewReader(elem))
	}
	parts = append(parts, strings.NewReader("]"))
	src := &countingReader{r: io.MultiReader(parts...)}

	var emitted, ahead int64
	count, err := decode(context.Background(), "in", src, func(_ int64, v []byte) error {
		emitted += int64(len(v)) + 1
		ahead = max(ahead, src.n-emitted)
		return nil
	}, func(p Problem) { t.Errorf("problem: %v", p) })
	if err != nil {
		t.Fatal(err)
	}
	if count != int64(n) {
		t.Fatalf("decoded %d records, want %d", count, n)
	}
	// What was read but not yet emitted: the reader's and the decoder's
	// buffers, never the document.
	if limit := int64(2 << 20); ahead > limit {
		t.Errorf("read up to %d bytes ahead of the records emitted, want at most %d (the document is %d)", ahead, limit, src.n)
	}
}

// repeatReader reads as an endless run of one byte.
type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// An element longer than MaxRecordBytes is reported and ends the document,
// as a line that long is skipped, instead of being read whole whatever its
// size.
func TestDecodeValueTooLong(t *testing.T) {
	for _, tc := range []struct{ name, open, close string }{
		{"element of an array", `[{"messageId":"m0"},"`, `",{"messageId":"m2"}]`},
		{"pretty-printed object", "{\n" + `"messageId":"m0"}` + "\n{\n" + `"pad":"`, `"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &countingReader{r: io.MultiReader(strings.NewReader(tc.open),
				io.LimitReader(repeatReader('x'), 4*MaxRecordBytes), strings.NewReader(tc.close))}
			got, problems := decodeAll(t, src)
			if want := []string{`{"messageId":"m0"}`}; fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("records %q, want %q", got, want)
			}
			if len(problems) != 1 || !errors.Is(problems[0].Err, errValueTooLong) || problems[0].Record != 1 {
				t.Fatalf("problems %v, want one at record 1 for a value too long", problems)
			}
			if limit := int64(MaxRecordBytes + 2<<20); src.n > limit {
				t.Errorf("read %d bytes before giving up, want at most %d", src.n, limit)
			}
		})
	}
}

// FuzzDecode: whatever the bytes, decode returns without error (the input
// reads cleanly), numbers records from 0 without a gap, and emits each
// element of a top-level array as a record of its own.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`[{"a":1},{"b":2}]`, "[\n  {\"a\": 1}\n]", "{\n\"a\":1}\n{\"b\":2}", `{"a":1}` + "\n" + `[1,2]`,
		"\xef\xbb\xbf[]", "[", "[1,", `[{"a":1}] {"b":2} [3]`, "\n\n", "{\n", "]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var n int64
		count, err := decode(context.Background(), "in", bytes.NewReader(in), func(idx int64, v []byte) error {
			if idx != n {
				t.Fatalf("record %d emitted with index %d", n, idx)
			}
			n++
			return nil
		}, func(Problem) {})
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if count != n {
			t.Fatalf("decode counted %d records, emitted %d", count, n)
		}
		// A valid array, alone in the input: one record per element.
		var items []json.RawMessage
		if t := bytes.TrimLeft(in, " \t\r\n"); len(t) > 0 && t[0] == '[' && json.Unmarshal(in, &items) == nil && n != int64(len(items)) {
			panic(fmt.Sprintf("an array of %d elements gave %d records", len(items), n))
		}
	})
}

// gzipMember compresses s into one gzip member; stored (level 0) keeps
// the text as it is, so that a flipped byte garbles one byte of it.
func gzipMember(t *testing.T, s string, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte(s))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// A damaged gzip member sends none of its records: they are held until
// its checksum is verified, so garbled lines of a member whose checksum
// fails are never sent. A member cut short does not take the next
// member with it: the search for the next header starts inside the
// damaged member, not after the bytes the decompressor consumed.
func TestDecodeDamagedMembers(t *testing.T) {
	lines := func(prefix string, n int) (string, []string) {
		var b strings.Builder
		var want []string
		for i := range n {
			l := fmt.Sprintf(`{"type":"track","messageId":"%s-%d"}`, prefix, i)
			b.WriteString(l + "\n")
			want = append(want, l)
		}
		return b.String(), want
	}
	first, wantFirst := lines("first", 50)
	damaged, _ := lines("damaged", 50)
	last, wantLast := lines("last", 50)
	want := append(append([]string{}, wantFirst...), wantLast...)

	garbled := gzipMember(t, damaged, gzip.NoCompression)
	// Flip a byte of a messageId, near the middle of the stored text: the
	// line still parses, as another message, and only the checksum at the
	// member's end tells.
	at := bytes.Index(garbled, []byte("damaged-25"))
	garbled[at] ^= 'd' ^ 'D'
	cut := gzipMember(t, damaged, gzip.BestCompression)
	cut = cut[:len(cut)*2/3]
	badTrailer := gzipMember(t, damaged, gzip.DefaultCompression)
	badTrailer[len(badTrailer)-6] ^= 0xff // the CRC

	for _, tc := range []struct {
		name   string
		member []byte
	}{{"garbled", garbled}, {"cut short", cut}, {"bad checksum", badTrailer}} {
		t.Run(tc.name, func(t *testing.T) {
			in := slices.Concat(gzipMember(t, first, gzip.DefaultCompression), tc.member, gzipMember(t, last, gzip.DefaultCompression))
			got, problems := decodeAll(t, bytes.NewReader(in))
			if !slices.Equal(got, want) {
				t.Errorf("emitted %d records (%d of the damaged member), want the %d of the intact members",
					len(got), strings.Count(strings.Join(got, "\n"), "amaged-"), len(want))
			}
			if len(problems) != 1 || !strings.Contains(problems[0].Error(), "none of its records sent") {
				t.Errorf("problems %v, want the damaged member reported once with its records not sent", problems)
			}
		})
	}
}

// A member over MaxMemberBytes (compressed) is read once, its records
// sent as read; if it turns out
// damaged, the problem says how many of its records were sent, and the
// next member is read.
func TestDecodeDamagedMemberOverTheBound(t *testing.T) {
	// Hex of random bytes: about half a byte compressed per byte.
	rng := rand.New(rand.NewPCG(1, 2))
	var text strings.Builder
	n := 3 * MaxMemberBytes / 1000
	pad := make([]byte, 500)
	for range n {
		for i := range pad {
			pad[i] = byte(rng.Uint32())
		}
		fmt.Fprintf(&text, `{"type":"track","messageId":"big","properties":{"pad":"%x"}}`+"\n", pad)
	}
	big := gzipMember(t, text.String(), gzip.BestSpeed)
	if len(big) <= MaxMemberBytes {
		t.Fatalf("the member is %d bytes, want over %d", len(big), MaxMemberBytes)
	}
	big[len(big)-6] ^= 0xff // the CRC
	in := slices.Concat(big, gzipMember(t, `{"type":"track","messageId":"after"}`+"\n", gzip.DefaultCompression))
	got, problems := decodeAll(t, bytes.NewReader(in))
	if len(got) != n+1 || !strings.Contains(got[n], `"after"`) {
		t.Errorf("emitted %d records, want the %d of the big member (sent as read) and the next one's", len(got), n)
	}
	if len(problems) != 1 || !strings.Contains(problems[0].Error(), fmt.Sprintf("its first %d records were sent", n)) {
		t.Errorf("problems %v, want the member reported once with the records sent", problems)
	}
}

// A JSON document that stops at a bad value inside a gzip member leaves
// the rest of the member unread: the next member is looked for at the
// member's end, so only the bad value is a problem (the middle of the
// deflate data was once read as a member header, a second, false one).
func TestDocumentStoppingMidMemberIsOneProblem(t *testing.T) {
	gz := func(s string) []byte {
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		if _, err := zw.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	doc := `[{"a":1}, nope` + strings.Repeat(" ", 1<<20) + `]`
	got, probs := decodeAll(t, bytes.NewReader(append(gz(doc), gz(`{"b":2}`+"\n")...)))
	if len(probs) != 1 || len(got) != 2 || got[0] != `{"a":1}` || got[1] != `{"b":2}` {
		t.Errorf("records %q, problems %v; want both records and one problem (the bad value)", got, probs)
	}
}
