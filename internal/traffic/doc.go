// Package traffic generates a realistic, deterministic stream of Segment
// messages, each paired with the outcome the worker must give it under its
// filtering and mapping rules (docs/mapping.md).
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
// twice as many anonymous visitors, and one shared device, built lazily).
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
//     duplicate is left untested. No message carries a userJwt in both
//     integrations.Castle and context.Castle, an empty token, or an
//     over-long event name; only security events carry a requestToken.
//   - EVENT_MAP is unset: the shop's own event names ("Signed In", ...) stay
//     $custom; only Castle's legacy names are security events.
//   - For Expect.Scoring (security events only): CASTLE_SCORING=on, the
//     worker maps each security event within 120 s of Now and sends it
//     within SCORING_MAX_AGE of its time (they are at most ~5 s older than
//     Now: a run that starts soon after generating with Now = time.Now()),
//     and Castle accepts its request token (the Castle-compatible server
//     does, for tokens minted by castleserver.NewRequestToken, within 120 s
//     of minting by its clock). With scoring off the same events go to
//     /v1/log with the same type and status.
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
//     ({"All":true}, {"Mixpanel":false}, {"All":false,"Castle":true}: the
//     exception for a truthy Castle key under "All": false). A share (Mix.Anonymous) comes from
//     anonymous visitors (UserID ""). Users in the Secure Mode cohort
//     (Mix.SecureUsers) carry their own HS256 userJwt on every page/track
//     (claims id, email; exp Now+2h), mostly in integrations.Castle.userJwt,
//     some in context.Castle.userJwt (where analytics-next puts it, and the
//     mapping looks second); a few of their messages carry no userId at
//     all, so the expected UserID is the claim id, not the userId (verified
//     claims override the user fields).
//   - Identify (identified): traits email, name, phone, createdAt,
//     address, custom traits. A Secure Mode user's identify carries the same
//     valid token as their page/track, so the per-user JWT cache never changes
//     an outcome: no page/track relies on a cached token, and anonymous
//     visitors (a separate population) never identify.
//   - Duplicate (drop duplicate): an exact copy (key and value) of
//     one of the last 1,024 forwardable single page/track records, at least
//     two records later. The original stays "forward".
//   - Unsupported (drop unsupported_type): screen (from mobile
//     libraries: rule 2 comes before rule 3), group, alias.
//   - ServerSide (drop server_side): channel "server" (analytics-
//     node, @segment/analytics-node, analytics-java, and analytics.js: the
//     channel decides), or no channel with a server library (analytics-go,
//     analytics-python, analytics-ruby, analytics-node, analytics-java).
//   - Mobile (drop mobile): channel "mobile" with analytics-ios,
//     analytics-kotlin or analytics-swift; track and identify.
//   - IntegrationDisabled (drop integration_disabled):
//     {"Castle":false}, {"castle":false}, {"All":false}, {"all":false},
//     {"All":false,"Mixpanel":true}, {"All":true,"Castle":false}, on page,
//     track and identify. Some come from Secure Mode users with an expired
//     token in context.Castle: rule 4 decides before rule 5.
//   - UserJWTInvalid (dead_letter user_jwt_invalid): a page/track
//     whose own token is alg "none", HS256 under another secret, expired,
//     not yet valid (nbf), HS512 under the right secret (wrong algorithm), or a
//     valid token whose payload was swapped for another user's (tampered).
//   - Malformed (dead_letter malformed): invalid JSON (trailing
//     comma, single quotes, an HTTP request line, gzip bytes), a truncated
//     page event, a JSON array, string, number or null, an object with no
//     type (MessageID is its messageId when it has one, else "").
//   - Security (forward, scored; none in DefaultMix, see SecurityMix): an
//     analytics.js track named with one of Castle's legacy security event
//     names (docs/mapping.md, "Security events"), Expect.CastleType and
//     CastleStatus its Castle type and status. It is live: received in the 3
//     seconds before Now, its request token (castleserver.NewRequestToken,
//     minted 0.1–2 s before the event for the browser's device) mostly in
//     integrations.Castle.requestToken, a quarter in
//     context.Castle.requestToken, and it always has a public IP. The kinds:
//     $login.succeeded naming the user; $login.failed naming the user, or
//     anonymous with properties.email (the user's, or an address of no
//     account, a third at disposable email domains); $registration.succeeded
//     of a new account (a new userId, context.traits.email, a quarter at
//     disposable domains); $password_reset_request.succeeded naming the user
//     or anonymous with properties.email; and logins of many users on one
//     shared device (one device name, user agent and public IP), so that a
//     scorer sees multiple accounts per device and a burst from one IP.
//     Expect.Scoring is "risk" when the event names a user (userId, or a
//     Secure Mode user's valid userJwt, which they carry here too) and its
//     type is not $password_reset_request, else "filter".
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
