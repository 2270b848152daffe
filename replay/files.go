package replay

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
)

// MaxRecordBytes bounds one record (one line, or one value of a whole-file
// JSON document). A longer line is reported and skipped.
const MaxRecordBytes = 16 << 20

// Input is one file of Segment messages, or "-" for stdin.
type Input struct {
	Path string
	Size int64 // bytes on disk; 0 for stdin
}

// Expand turns the command line's sources into files, in a stable order:
// directories are walked (sorted, recursively) for .json, .ndjson, .jsonl and
// .gz files, which is Segment's archive layout of dated folders; "-" is
// stdin. A source that does not exist is an error.
func Expand(sources []string) ([]Input, error) {
	var out []Input
	for _, src := range sources {
		if src == "-" {
			out = append(out, Input{Path: "-"})
			continue
		}
		st, err := os.Stat(src)
		if err != nil {
			return nil, fmt.Errorf("replay source: %w", err)
		}
		if !st.IsDir() {
			out = append(out, Input{Path: src, Size: st.Size()})
			continue
		}
		var found []Input
		err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() || !archiveFile(d.Name()) {
				return nil
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			found = append(found, Input{Path: path, Size: info.Size()})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("replay source %s: %w", src, err)
		}
		slices.SortFunc(found, func(a, b Input) int { return strings.Compare(a.Path, b.Path) })
		out = append(out, found...)
	}
	return out, nil
}

func archiveFile(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false
	}
	for _, ext := range []string{".json", ".ndjson", ".jsonl", ".gz"} {
		if strings.HasSuffix(name, ext) {
			return true
		}
	}
	return false
}

// Problem is something wrong in an input that was skipped: a corrupt gzip
// member, a line too long, a document that does not parse.
type Problem struct {
	Path   string
	Record int64 // index of the record at or after which it happened
	Err    error
}

func (p Problem) Error() string {
	return fmt.Sprintf("%s: record %d: %v", p.Path, p.Record, p.Err)
}

// counter counts bytes read, for progress.
type counter struct {
	r io.Reader
	n *atomic.Int64
}

func (c counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// inputError marks a failure to read the input itself (a disk or network
// error), as opposed to bad content: it stops the replay instead of being
// skipped as a corrupt member.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

// guarded wraps the input's read errors (except io.EOF) as inputErrors.
type guarded struct{ r io.Reader }

func (g guarded) Read(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		err = inputError{err}
	}
	return n, err
}

// gzipMagic starts every gzip member.
var gzipMagic = []byte{0x1f, 0x8b, 0x08}

// MaxMemberBytes bounds the compressed bytes of one gzip member held to
// verify its checksum before any of its records is emitted: the member is
// decompressed once to check it, then again to read its records. A larger
// member is read once and its records emitted as they come: if it turns
// out damaged, its records before the damage were emitted (the problem
// reported says how many).
const MaxMemberBytes = 8 << 20

// decode emits the records of one file or object: each non-empty line of
// NDJSON, or each value of a whole-file JSON document (a message, an
// envelope, or an array of messages). gzip is recognised by its magic
// bytes, whatever the name (S3 may serve an object already decompressed).
// The records of a gzip member are emitted once its checksum is verified
// (for members up to MaxMemberBytes); a damaged member is reported and
// skipped, none of its records emitted, and reading goes on at the next
// member header after the damaged member's own. emit gets the record's
// index in the file (from 0) and may keep the bytes; decode returns the
// number of records. A read error of r itself is returned (wrapped),
// never skipped.
func decode(ctx context.Context, name string, r io.Reader, emit func(idx int64, value []byte) error, problem func(Problem)) (int64, error) {
	br := bufio.NewReaderSize(guarded{r}, 256<<10)
	head, err := br.Peek(3)
	var ie inputError
	if errors.As(err, &ie) {
		return 0, fmt.Errorf("replay: read %s: %w", name, ie)
	}
	var idx int64
	in := Input{Path: name}
	if !bytes.Equal(head, gzipMagic) {
		err := readRecords(ctx, in, br, &idx, emit, problem)
		var ge gzipError
		if errors.As(err, &ge) {
			return idx, fmt.Errorf("replay: read %s: %w", name, ge.err)
		}
		return idx, err
	}
	t := &tape{br: br}
	for {
		// First pass: decompress the member, keeping its bytes, to verify
		// its checksum.
		t.mark()
		zr, err := gzip.NewReader(t)
		verified := false
		if err == nil {
			zr.Multistream(false)
			_, err = io.Copy(io.Discard, zr)
			verified = err == nil
		}
		streamed := errors.Is(err, errOverKept)
		switch {
		case verified, streamed:
			// Second pass, over the same bytes: the records. A member too
			// large to keep is read once, its records emitted as read.
			t.rewind()
			if zr, err = gzip.NewReader(t); err == nil {
				zr.Multistream(false)
				first := idx
				err = readRecords(ctx, in, bufio.NewReaderSize(zr, 256<<10), &idx, emit, problem)
				if err == nil {
					// readRecords may stop before the member's end (a JSON
					// document that stops at a bad value): read the rest,
					// so that the next member is looked for where this
					// one ends, not in its deflate data.
					if _, derr := io.Copy(io.Discard, zr); derr != nil {
						err = gzipError{derr}
					}
				}
				var ge gzipError
				if errors.As(err, &ge) {
					err = ge.err
					if streamed {
						err = fmt.Errorf("corrupt gzip member over %d MiB, so read once: its first %d records were sent before the damage showed; skipped to the next one: %w",
							MaxMemberBytes>>20, idx-first, err)
					}
				} else if err != nil {
					return idx, err
				}
			}
		case errors.Is(err, io.EOF):
			return idx, nil // nothing after the last member
		}
		if err != nil {
			if errors.As(err, &ie) {
				return idx, fmt.Errorf("replay: read %s: %w", name, ie)
			}
			if !streamed {
				err = fmt.Errorf("corrupt gzip member, none of its records sent; skipped to the next one: %w", err)
			}
			problem(Problem{Path: name, Record: idx, Err: err})
			if ok, err := t.skipToMember(); !ok {
				return idx, readErr(name, err)
			}
			continue
		}
		// Member done; is there another?
		if more, err := t.more(); !more {
			if errors.As(err, &ie) {
				return idx, fmt.Errorf("replay: read %s: %w", name, ie)
			}
			return idx, nil
		}
	}
}

// errOverKept ends a first pass over a member too large to keep.
var errOverKept = errors.New("gzip member larger than MaxMemberBytes")

// tape is what the gzip decompressor reads: the input, keeping the bytes
// read since mark, up to MaxMemberBytes, so that a member can be read
// twice (once to verify it, once for its records) and so that the search
// for the next member after a damaged one starts just after the damaged
// member's own header. The decompressor may have read on into the next
// member before it failed (a member cut short and followed by another); a
// search from where it stopped would lose that member too.
type tape struct {
	br   *bufio.Reader
	back []byte // read again before br
	kept []byte // read since mark, while keep
	keep bool
}

func (t *tape) ReadByte() (byte, error) {
	var b byte
	if len(t.back) > 0 {
		b, t.back = t.back[0], t.back[1:]
	} else {
		var err error
		if b, err = t.br.ReadByte(); err != nil {
			return 0, err
		}
	}
	if t.keep {
		t.kept = append(t.kept, b)
		if len(t.kept) > MaxMemberBytes {
			return 0, errOverKept // the byte is kept: rewind reads it again
		}
	}
	return b, nil
}

func (t *tape) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(t.back) > 0 {
		n = copy(p, t.back)
		t.back = t.back[n:]
	} else {
		n, err = t.br.Read(p)
	}
	if t.keep {
		t.kept = append(t.kept, p[:n]...)
		if len(t.kept) > MaxMemberBytes {
			return n, errOverKept
		}
	}
	return n, err
}

// mark starts keeping the bytes read, from here.
func (t *tape) mark() {
	t.kept, t.keep = nil, true
}

// rewind stops keeping and reads the bytes kept since mark again.
func (t *tape) rewind() {
	if len(t.back) == 0 {
		t.back = t.kept
	} else {
		t.back = append(t.kept, t.back...)
	}
	t.kept, t.keep = nil, false
}

// more reports whether anything is left to read. A read error of the
// input itself is returned.
func (t *tape) more() (bool, error) {
	b, err := t.ReadByte()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = nil
		}
		return false, err
	}
	t.back = append([]byte{b}, t.back...)
	return true, nil
}

// skipToMember discards input up to the next gzip member header after the
// first byte read since mark (or after the bytes read, when they were not
// kept: a member read once) and reports whether one was found. A read error of the
// input itself is returned.
func (t *tape) skipToMember() (bool, error) {
	if t.keep && len(t.kept) > 0 {
		t.kept = t.kept[1:]
		t.rewind()
	}
	t.kept, t.keep = nil, false
	matched := 0
	for {
		b, err := t.ReadByte()
		if err != nil {
			var ie inputError
			if errors.As(err, &ie) {
				return false, ie
			}
			return false, nil
		}
		switch {
		case b == gzipMagic[matched]:
			matched++
		case b == gzipMagic[0]:
			matched = 1
		default:
			matched = 0
		}
		if matched == len(gzipMagic) {
			t.back = append(slices.Clone(gzipMagic), t.back...)
			return true, nil
		}
	}
}

func readErr(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("replay: read %s: %w", name, err)
}

// gzipError marks a decompression failure, as opposed to a failure of emit
// or of the context.
type gzipError struct{ err error }

func (e gzipError) Error() string { return e.err.Error() }

// readRecords reads NDJSON lines, or a whole-file JSON document when the
// stream starts with an array (compact or pretty-printed: json.dump of a
// list writes one line) or its first line is a lone "{".
func readRecords(ctx context.Context, in Input, br *bufio.Reader, idx *int64, emit func(int64, []byte) error, problem func(Problem)) error {
	array, err := startsArray(br)
	if err != nil {
		return gzipError{err}
	}
	if array {
		return readDocument(ctx, in, br, idx, emit, problem)
	}
	first := true
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		line, err := readLine(br)
		// A line cut short by a read error is not a record: the error is
		// reported (or the read retried) instead.
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 && (err == nil || errors.Is(err, io.EOF)) {
			if first && err == nil && len(trimmed) == 1 && trimmed[0] == '{' {
				// A pretty-printed document: the rest of the stream is one
				// or more JSON values.
				return readDocument(ctx, in, io.MultiReader(bytes.NewReader(line), bytes.NewReader([]byte{'\n'}), br), idx, emit, problem)
			}
			first = false
			// One record per line; a line that is not a Segment message
			// (an array, broken JSON) is the mapping's to dead-letter.
			if eerr := emit(*idx, line); eerr != nil {
				return eerr
			}
			*idx++
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, errLineTooLong):
			problem(Problem{Path: in.Path, Record: *idx, Err: err})
			if eerr := emit(*idx, nil); eerr != nil { // nil: skipped, nothing to send
				return eerr
			}
			*idx++
		default:
			return gzipError{err}
		}
	}
}

// utf8BOM is the byte order mark some Windows tools write at the start of
// a JSON file.
var utf8BOM = []byte{0xef, 0xbb, 0xbf}

// startsArray discards a byte order mark and the white space that opens
// the stream, and reports whether what follows is a JSON array. A read
// error other than io.EOF is returned.
func startsArray(br *bufio.Reader) (bool, error) {
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
	}
	for {
		b, err := br.Peek(1)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return false, nil
			}
			return false, err
		}
		switch b[0] {
		case ' ', '\t', '\r', '\n':
			_, _ = br.Discard(1)
		default:
			return b[0] == '[', nil
		}
	}
}

var errLineTooLong = fmt.Errorf("line longer than %d bytes, skipped", MaxRecordBytes)

// readLine returns the next line without its newline. A line longer than
// MaxRecordBytes is consumed and reported with errLineTooLong.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if len(line)+len(chunk) > MaxRecordBytes {
			for errors.Is(err, bufio.ErrBufferFull) {
				_, err = br.ReadSlice('\n')
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return nil, errLineTooLong
		}
		line = append(line, chunk...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		line = bytes.TrimRight(line, "\r\n")
		if err != nil {
			return line, err
		}
		return line, nil
	}
}

// readDocument emits the values of a whole-file JSON document; the elements
// of a top-level array are records of their own, read an element at a
// time: a document of any size is read in the memory of its largest
// element. A value (or an element) longer than MaxRecordBytes, like a value
// that does not parse, is reported and ends the document: there is no next
// line to resume at.
func readDocument(ctx context.Context, in Input, r io.Reader, idx *int64, emit func(int64, []byte) error, problem func(Problem)) error {
	err := readValues(ctx, in, r, idx, emit, problem)
	if errors.Is(err, errRestSkipped) {
		return nil
	}
	return err
}

// errRestSkipped ends readValues once a problem ends the document.
var errRestSkipped = errors.New("rest of the document skipped")

// readValues is readDocument. Bad content is reported as a problem and
// returns errRestSkipped.
func readValues(ctx context.Context, in Input, r io.Reader, idx *int64, emit func(int64, []byte) error, problem func(Problem)) error {
	bound := &valueBound{r: r}
	dec := json.NewDecoder(bound)
	bound.dec = dec
	skip := func(err error) error {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.Is(err, io.EOF):
			// Inside an array: the input ends in it, a truncated document.
			err = io.ErrUnexpectedEOF
			fallthrough
		case errors.As(err, &se) || errors.As(err, &te) || errors.Is(err, io.ErrUnexpectedEOF):
			problem(Problem{Path: in.Path, Record: *idx, Err: fmt.Errorf("not JSON, rest of the document skipped: %w", err)})
		case errors.Is(err, errValueTooLong):
			problem(Problem{Path: in.Path, Record: *idx, Err: fmt.Errorf("%w, rest of the document skipped", err)})
		default:
			return gzipError{err}
		}
		return errRestSkipped
	}
	// value decodes and emits the next value.
	value := func() error {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return skip(err)
		}
		if err := emit(*idx, raw); err != nil {
			return err
		}
		*idx++
		return nil
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !dec.More() {
			// The end, or a stray ] or } (a syntax error), or a read error.
			var raw json.RawMessage
			if err := dec.Decode(&raw); !errors.Is(err, io.EOF) {
				return skip(err)
			}
			return nil
		}
		// More has skipped the white space: the next byte opens the value.
		var first [1]byte
		if _, _ = dec.Buffered().Read(first[:]); first[0] != '[' {
			if err := value(); err != nil {
				return err
			}
			continue
		}
		if _, err := dec.Token(); err != nil { // the opening [
			return skip(err)
		}
		for dec.More() {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := value(); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // the closing ]
			return skip(err)
		}
	}
}

var errValueTooLong = fmt.Errorf("value longer than %d bytes", MaxRecordBytes)

// valueBound reads for dec, and fails once dec holds more than
// MaxRecordBytes past the end of the last value or token it returned: a
// value of a document is bounded as a line is, whatever the document's
// size.
type valueBound struct {
	r    io.Reader
	dec  *json.Decoder
	read int64
}

func (v *valueBound) Read(p []byte) (int, error) {
	// One byte past the bound, so that a value of exactly MaxRecordBytes
	// still ends.
	room := MaxRecordBytes + 1 - (v.read - v.dec.InputOffset())
	if room <= 0 {
		return 0, errValueTooLong
	}
	if int64(len(p)) > room {
		p = p[:room]
	}
	n, err := v.r.Read(p)
	v.read += int64(n)
	return n, err
}
