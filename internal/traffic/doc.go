// Package traffic generates a realistic, deterministic stream of Segment
// messages, each paired with the outcome the worker must give it under
// SPEC §3 (filtering) and §4 (mapping).
//
// It exists for the demo, the end-to-end tests, the reliability suite and the
// end-to-end benchmark: they produce [Record]s to Kafka and compare what the
// Castle-compatible server received (and what was dropped or dead-lettered)
// with the [Expect]s. The expectations come from the generator's own intent
// (what it meant each message to be), never from the mapping package, so a
// test comparing the worker against them can fail.
//
// What it does not do: it does not talk to Kafka or Castle, does not map
// anything, and keeps no more state than duplicates need (a bounded ring of
// recent forwardable records) plus the user population (Config.Users and
// twice as many anonymous visitors, built lazily).
//
// # Assumptions about the worker
//
// The expectations hold for a worker configured with the defaults:
//   - PAGE_TYPE=page: a forwarded page is CastleType "$page", a track "$custom"
//     named by its event (no generated event name exceeds 1024 characters).
//   - AcceptMobile=false: channel "mobile" is dropped as "mobile".
//   - RequireUserJWT=false: a userId without a token is forwarded as is.
//   - The dedupe window holds more messageIds than the stream forwards between
//     an original and its copy (the default one million is ample: copies are
//     drawn from the last 1,024 forwardable single records).
//   - CASTLE_API_SECRET equals Config.Secret; only HS256 is accepted; and the
//     verifier's clock is in [Now-5min, Now+50min] with at most 5 min of
//     leeway: valid tokens (claims id, email, iat Now-30min, exp Now+2h)
//     verify, "expired" ones expired 15 min to 48 h before Now, "not yet
//     valid" ones have nbf Now+1h. With an empty Secret no Secure Mode
//     traffic (valid or not) is generated at all.
//   - Batch envelopes merge per key, the item winning: a batch-level
//     integrations key applies to an item only when the item does not set the
//     same key, and the same for context keys (library, ...).
//   - Messages of one Key are processed in stream order (same partition),
//     and a messageId counts as forwarded by the time a copy two or more
//     records later is filtered.
//   - channel "client", "browser" or none with library analytics.js is
//     client-side; two spellings of one integrations key ("Castle" and
//     "castle") only ever appear together with the same value.
//   - Only page/track are ever repeated: whether a repeated identify is a
//     duplicate is left untested. No message carries a token in both
//     integrations.Castle and context.Castle, an empty token, a requestToken,
//     or an over-long event name.
//
// # What each kind exercises (Mix fields)
//
//   - Page, Track (forward): analytics.js messages, channel "client" (some
//     "browser", some without channel), with real browser user agents, public
//     IPv4/IPv6 from ISP ranges (a few RFC 1918 / ULA addresses, which the
//     mapping leaves out of context: still forwarded), locale, timezone,
//     context.page, sometimes a campaign; properties carry trace_id =
//     messageId, and track properties sometimes nest objects and arrays and
//     use non-ASCII names and values. Integrations are absent or enable Castle
//     ({"All":true}, {"Mixpanel":false}, {"All":false,"Castle":true}: SPEC
//     §3.4's "Castle truthy" exception). A share (Mix.Anonymous) comes from
//     anonymous visitors (UserID ""). Users in the Secure Mode cohort
//     (Mix.SecureUsers) carry their own HS256 userJwt on every page/track
//     (claims id, email; exp Now+2h), mostly in integrations.Castle.userJwt,
//     some in context.Castle.userJwt (analytics-next, SPEC §3.5 "look there
//     second"); a few of their messages carry no userId at all, so the
//     expected UserID is the claim id, not the userId (SPEC §4 "verified
//     userJwt claims override").
//   - Identify (identified, SPEC §4): traits email, name, phone, createdAt,
//     address, custom traits. A Secure Mode user's identify carries the same
//     valid token as their page/track, so the per-user JWT cache never changes
//     an outcome: no page/track relies on a cached token, and anonymous
//     visitors (a separate population) never identify.
//   - Duplicate (drop duplicate, SPEC §3.6): an exact copy (key and value) of
//     one of the last 1,024 forwardable single page/track records, at least
//     two records later. The original stays "forward".
//   - Unsupported (drop unsupported_type, SPEC §3.2): screen (from mobile
//     libraries: rule 2 comes before rule 3), group, alias.
//   - ServerSide (drop server_side, SPEC §3.3): channel "server" (analytics-
//     node, @segment/analytics-node, analytics-java, and analytics.js: the
//     channel decides), or no channel with a server library (analytics-go,
//     analytics-python, analytics-ruby, analytics-node, analytics-java).
//   - Mobile (drop mobile, SPEC §3.3): channel "mobile" with analytics-ios,
//     analytics-kotlin or analytics-swift; track and identify.
//   - IntegrationDisabled (drop integration_disabled, SPEC §3.4):
//     {"Castle":false}, {"castle":false}, {"All":false}, {"all":false},
//     {"All":false,"Mixpanel":true}, {"All":true,"Castle":false}, on page,
//     track and identify. Some come from Secure Mode users with an expired
//     token in context.Castle: rule 4 decides before rule 5.
//   - UserJWTInvalid (dead_letter user_jwt_invalid, SPEC §3.5): a page/track
//     whose own token is alg "none", HS256 under another secret, expired,
//     not yet valid (nbf), HS512 under the right secret (wrong algorithm), or a
//     valid token whose payload was swapped for another user's (tampered).
//   - Malformed (dead_letter malformed, SPEC §3.1): invalid JSON (trailing
//     comma, single quotes, an HTTP request line, gzip bytes), a truncated
//     page event, a JSON array, string, number or null, an object with no
//     type (MessageID is its messageId when it has one, else "").
//
// # Envelopes
//
// Config.EnvelopeFraction of the records are HTTP-API batch envelopes of
// 2–20 messages, one Expect per item:
//   - a browser batch: one user's raw analytics.js messages (no channel) with
//     a batch-level context.library analytics.js that some items lack, and
//     sometimes batch-level integrations {"Castle":false} or {"All":false}
//     that disable every item not overriding it (items that set
//     "Castle":true or a Castle options object, or "All":true under "All",
//     stay enabled);
//   - a server batch in analytics-go's wire format: batch-level messageId,
//     sentAt and context.library analytics-go, items of several users with
//     no channel and no library of their own: server_side only through the
//     batch context (group/alias are unsupported_type first).
//
// Either kind sometimes holds one bad item (42, "oops", null, or an object
// without type): that item is dead_letter malformed, the others keep theirs.
//
// # Determinism and speed
//
// The same Config yields the same bytes; nothing reads the wall clock or a
// global random source. Streams of different seeds share no users, keys or
// messageIds, so generators with different seeds may be interleaved (for
// instance one per core) and every Expect still holds.
//
// Messages are built as analytics-go v3.3.0 values and written by a small
// reflection-free encoder that matches encoding/json on them (tested against
// it); Segment's enrichment (channel, originalTimestamp, sentAt, receivedAt,
// category, _metadata) is appended after.
package traffic
