package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/castle-destination/castle-destination/internal/rawjson"
)

// Shard is the part of the input a replay sends: the Index-th of Count
// disjoint parts, split by user so that one user's messages stay in one
// part, in their input order. Every process of a sharded replay reads the
// whole input and keeps its part; the union of the Count parts is the
// whole input. The zero Shard (or Count 1) is the whole input.
//
// A message's user is its userId, else its anonymousId (both as the
// mapping reads them: the last such member of the object, a string
// unescaped, a number as written). The Castle user id of a Secure Mode
// message without a userId comes from its token; such a message goes by
// its anonymousId, so that user's events may be split between shards
// (delivered all the same, in no guaranteed order between the shards). A message with neither goes by its
// messageId, and a record that is not a JSON object, or a message with
// none of the three, by its bytes: exactly one shard sends it (and
// dead-letters it when it is malformed).
//
// A batch envelope whose items belong to several shards is split: each
// shard sends the envelope with only its own items, the envelope's other
// members (context, integrations, sentAt) unchanged, so per-user order
// holds for envelopes too. A dead letter of such an item carries the
// item, as always; a dead letter of the whole split envelope carries the
// shard's part of it.
type Shard struct {
	Index, Count int
}

// ParseShard reads "I/N" with 0 <= I < N. "" is the whole input.
func ParseShard(s string) (Shard, error) {
	if s == "" {
		return Shard{}, nil
	}
	i, n, ok := strings.Cut(s, "/")
	if !ok {
		return Shard{}, errors.New("is not I/N (the I-th of N parts, from 0)")
	}
	idx, err1 := strconv.Atoi(strings.TrimSpace(i))
	cnt, err2 := strconv.Atoi(strings.TrimSpace(n))
	if err1 != nil || err2 != nil {
		return Shard{}, errors.New("is not I/N (the I-th of N parts, from 0)")
	}
	if cnt < 1 || idx < 0 || idx >= cnt {
		return Shard{}, errors.New("is not I/N with 0 <= I < N")
	}
	return Shard{Index: idx, Count: cnt}, nil
}

// String is "I/N", or "" for the whole input.
func (s Shard) String() string {
	if s.Count <= 1 {
		return ""
	}
	return strconv.Itoa(s.Index) + "/" + strconv.Itoa(s.Count)
}

// Of returns the shard of a user key.
func (s Shard) Of(key []byte) int {
	if s.Count <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write(key)
	return int(h.Sum64() % uint64(s.Count))
}

// Select returns the part of a record that belongs to this shard: the
// record itself, an envelope with only this shard's items, or nothing
// (mine false). others counts the messages left to other shards.
func (s Shard) Select(value []byte) (part []byte, mine bool, others int) {
	if s.Count <= 1 {
		return value, true, 0
	}
	if !json.Valid(value) || rawjson.First(value) != '{' {
		if s.Of(value) == s.Index {
			return value, true, 0
		}
		return nil, false, 1
	}
	batchKey, batch := envelopeBatch(value)
	if batch == nil {
		if s.Of(userKey(value)) == s.Index {
			return value, true, 0
		}
		return nil, false, 1
	}
	var items [][]byte
	all := true
	rawjson.Elements(batch, func(item []byte) bool {
		if s.Of(userKey(item)) == s.Index {
			items = append(items, item)
		} else {
			all = false
			others++
		}
		return true
	})
	switch {
	case all:
		return value, true, 0
	case len(items) == 0:
		return nil, false, others
	}
	// Rebuild the envelope with the same members, the batch holding only
	// this shard's items.
	out := make([]byte, 0, len(value))
	out = append(out, '{')
	n := 0
	rawjson.Members(value, func(k, v []byte) bool {
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, k...)
		out = append(out, ':')
		if &k[0] == &batchKey[0] {
			out = append(out, '[')
			out = append(out, bytes.Join(items, []byte{','})...)
			out = append(out, ']')
			return true
		}
		out = append(out, v...)
		return true
	})
	out = append(out, '}')
	return out, true, others
}

// envelopeBatch returns the key and value of the member the mapping takes
// for an envelope's batch: the first whose key is "batch" in any case,
// when it is an array. Otherwise the record is one message (nil).
func envelopeBatch(obj []byte) (key, batch []byte) {
	rawjson.Members(obj, func(k, v []byte) bool {
		// The raw key, ASCII case-insensitively, as the mapping matches it.
		if len(k) == len(`"batch"`) && bytes.EqualFold(k[1:len(k)-1], []byte("batch")) {
			if rawjson.First(v) == '[' {
				key, batch = k, v
			}
			return false
		}
		return true
	})
	return key, batch
}

// userKey is what a message is sharded by: its user, else its messageId,
// else its bytes.
func userKey(msg []byte) []byte {
	if rawjson.First(msg) != '{' {
		return msg
	}
	var user, anon, id []byte
	rawjson.Members(msg, func(k, v []byte) bool {
		switch string(k) { // raw keys, exactly as the mapping matches them
		case `"userId"`:
			user = scalar(v)
		case `"anonymousId"`:
			anon = scalar(v)
		case `"messageId"`:
			id = scalar(v)
		}
		return true
	})
	switch {
	case len(user) > 0:
		return append([]byte("u:"), user...)
	case len(anon) > 0:
		return append([]byte("u:"), anon...)
	case len(id) > 0:
		return append([]byte("m:"), id...)
	}
	return msg
}

// scalar is a raw JSON scalar as the mapping reads it: a string unescaped,
// a number or boolean as written; anything else is empty.
func scalar(v []byte) []byte {
	v = bytes.TrimSpace(v)
	switch rawjson.First(v) {
	case '"':
		if bytes.IndexByte(v, '\\') < 0 && validUTF8ASCIIOnly(v) {
			return v[1 : len(v)-1]
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			return nil
		}
		return []byte(s)
	case '{', '[', 'n', 0:
		return nil
	}
	return v
}

func validUTF8ASCIIOnly(v []byte) bool {
	for _, c := range v {
		if c >= 0x80 {
			return false
		}
	}
	return true
}
