package traffic

// The fixed vocabulary the generator draws from: real browser user agents,
// real ISP address ranges, one fictional shop's pages and its tracked events.
// Everything here is read-only after package initialisation.

// userAgents are real browser user-agent strings (desktop and mobile web).
var userAgents = [...]string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
	"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Safari/537.36",
}

// ipv4Ranges are public ranges announced by large consumer ISPs (the first
// bytes are fixed, the rest random): Comcast 73.0.0.0/8, Deutsche Telekom
// 79.192.0.0/10, BT 86.128.0.0/10, Orange 90.0.0.0/9, SoftBank 126.0.0.0/8.
var ipv4Ranges = [...]struct {
	base [4]byte
	bits int // prefix length
}{
	{[4]byte{73, 0, 0, 0}, 8},
	{[4]byte{79, 192, 0, 0}, 10},
	{[4]byte{86, 128, 0, 0}, 10},
	{[4]byte{90, 0, 0, 0}, 9},
	{[4]byte{126, 0, 0, 0}, 8},
}

// ipv6Prefixes are inside public IPv6 allocations of consumer ISPs: Comcast
// 2601::/20, Deutsche Telekom 2003::/19, Orange France 2a01:cb00::/24. The
// generated addresses are 2601:000x:..., 2003:00cx:..., 2a01:cb0x:....
var ipv6Prefixes = [...][4]byte{
	{0x26, 0x01, 0x00, 0x00},
	{0x20, 0x03, 0x00, 0xc0},
	{0x2a, 0x01, 0xcb, 0x00},
}

type localeInfo struct {
	locale, timezone string
}

var locales = [...]localeInfo{
	{"en-US", "America/New_York"},
	{"en-US", "America/Los_Angeles"},
	{"en-US", "America/Chicago"},
	{"en-GB", "Europe/London"},
	{"de-DE", "Europe/Berlin"},
	{"fr-FR", "Europe/Paris"},
	{"ja-JP", "Asia/Tokyo"},
	{"pt-BR", "America/Sao_Paulo"},
	{"es-ES", "Europe/Madrid"},
}

const site = "https://www.acme-outfitters.com"

type pageInfo struct {
	path, title, name, category string
}

var pages = [...]pageInfo{
	{"/", "Acme Outfitters — Gear for every trail", "Home", "Marketing"},
	{"/login", "Sign in · Acme Outfitters", "Login", "Account"},
	{"/signup", "Create your account · Acme Outfitters", "Sign Up", "Account"},
	{"/account", "Your account · Acme Outfitters", "Account", "Account"},
	{"/account/security", "Security settings · Acme Outfitters", "Security Settings", "Account"},
	{"/account/orders", "Your orders · Acme Outfitters", "Orders", "Account"},
	{"/products/trail-runner-2", "Trail Runner 2 — Men's Running Shoe", "Product", "Shop"},
	{"/products/summit-shell-jacket", "Summit Shell Jacket — Waterproof", "Product", "Shop"},
	{"/products/ultralight-tent-2p", "Ultralight Tent 2P", "Product", "Shop"},
	{"/collections/sale", "Sale — up to 40% off", "Collection", "Shop"},
	{"/search", "Search results · Acme Outfitters", "Search", "Shop"},
	{"/cart", "Your cart · Acme Outfitters", "Cart", "Checkout"},
	{"/checkout", "Checkout · Acme Outfitters", "Checkout", "Checkout"},
	{"/blog/how-to-pack-for-a-thru-hike", "How to pack for a thru-hike", "Blog Post", "Content"},
	{"/pricing", "Acme+ membership", "Pricing", "Marketing"},
}

var searchTerms = [...]string{"rain jacket", "tent", "trail shoes", "headlamp", "sleeping bag", "chaussures de randonnée", "テント"}

var referrers = [...]string{
	"", "", "",
	"https://www.google.com/",
	"https://duckduckgo.com/",
	"https://www.bing.com/",
	"https://t.co/",
	"https://www.reddit.com/r/Ultralight/",
	"https://mail.google.com/",
}

var campaigns = [...][3]string{ // source, medium, name
	{"newsletter", "email", "spring_sale_2024"},
	{"google", "cpc", "brand_search"},
	{"facebook", "paid_social", "retargeting_q2"},
	{"partner", "affiliate", "trailblog"},
}

type product struct {
	id, sku, name, slug, category, brand string
	price                                float64
}

var products = [...]product{
	{"prd_1001", "TR2-M-42", "Trail Runner 2", "trail-runner-2", "Footwear", "Acme", 129.00},
	{"prd_1002", "SSJ-W-M", "Summit Shell Jacket", "summit-shell-jacket", "Outerwear", "Acme", 249.50},
	{"prd_1003", "ULT-2P", "Ultralight Tent 2P", "ultralight-tent-2p", "Camping", "Ridgeway", 389.99},
	{"prd_1004", "HL-400", "Headlamp 400 lm", "headlamp-400", "Accessories", "Lumen", 39.95},
	{"prd_1005", "SB-DWN-0C", "Down Sleeping Bag 0°C", "down-sleeping-bag-0c", "Camping", "Ridgeway", 299.00},
	{"prd_1006", "SCK-MER-3", "Merino Socks (3 pack)", "merino-socks-3-pack", "Accessories", "Acme", 24.00},
}

// trackEvents are the client-side track event names, with a weight each.
// A few carry non-ASCII names, as real multilingual apps send.
var trackEvents = [...]struct {
	name   string
	weight int
}{
	{"Product Viewed", 30},
	{"Product Added", 10},
	{"Cart Viewed", 6},
	{"Checkout Started", 5},
	{"Order Completed", 5},
	{"Signed In", 12},
	{"Signed Out", 4},
	{"Signed Up", 3},
	{"Password Changed", 2},
	{"Password Reset Requested", 2},
	{"Email Changed", 1},
	{"Two-Factor Enabled", 1},
	{"Payment Info Entered", 3},
	{"Products Searched", 8},
	{"Commande passée ✓", 1},
	{"注文完了", 1},
	{"Überweisung gesendet", 1},
}

var trackWeightTotal = func() int {
	n := 0
	for _, e := range trackEvents {
		n += e.weight
	}
	return n
}()

var firstNames = [...]string{"Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Sofía", "Zoë", "José", "Björn", "Chloé", "Hiroshi", "Aiko", "Mohammed", "Priya", "Olusegun", "Łukasz", "Renée"}
var lastNames = [...]string{"Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "García", "Müller", "Núñez", "Åberg", "Dubois", "Tanaka", "Sato", "Haddad", "Sharma", "Adeyemi", "Kowalski", "O'Brien"}
var emailDomains = [...]string{"gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "acme-corp.io", "web.de", "orange.fr"}

// disposableDomains are well-known disposable email providers (all on the
// Castle-compatible server's default list, so that its disposable_email
// rule fires).
var disposableDomains = [...]string{"mailinator.com", "yopmail.com", "guerrillamail.com", "sharklasers.com", "10minutemail.com"}

type address struct {
	street, city, state, postalCode, country string
}

var addresses = [...]address{
	{"1600 Amphitheatre Pkwy", "Mountain View", "CA", "94043", "US"},
	{"350 5th Ave", "New York", "NY", "10118", "US"},
	{"221B Baker St", "London", "", "NW1 6XE", "GB"},
	{"Unter den Linden 77", "Berlin", "BE", "10117", "DE"},
	{"55 Rue du Faubourg Saint-Honoré", "Paris", "", "75008", "FR"},
	{"1-1 Chiyoda", "Tokyo", "13", "100-8111", "JP"},
	{"Av. Paulista 1578", "São Paulo", "SP", "01310-200", "BR"},
	{"Calle de Alcalá 42", "Madrid", "MD", "28014", "ES"},
}

var plans = [...]string{"free", "free", "free", "plus", "plus", "pro"}

// Libraries seen on the wire, by side (research/segment-spec.md §2.2).
type library struct{ name, version string }

var (
	libAJS            = library{"analytics.js", "next-1.70.0"}
	libNodeNext       = library{"@segment/analytics-node", "2.1.2"}
	serverChannelLibs = [...]library{
		libNodeNext,
		{"analytics-node", "6.2.0"},
		{"analytics-java", "3.5.1"},
		libAJS, // a spoofed or proxied library: channel "server" still decides
	}
	// serverNoChannelLibs are server libraries (docs/mapping.md, "Filtering,
	// in order", rule 3), used on messages without a channel.
	serverNoChannelLibs = [...]library{
		{"analytics-go", "3.0.0"},
		{"analytics-python", "2.3.2"},
		{"analytics-ruby", "2.4.0"},
		{"analytics-node", "6.2.0"},
		{"analytics-java", "3.5.1"},
	}
	mobileLibs = [...]library{
		{"analytics-ios", "4.1.8"},
		{"analytics-kotlin", "1.15.0"},
		{"analytics-swift", "1.5.11"},
	}
)

var mobileEvents = [...]string{"Application Opened", "Application Backgrounded", "Signed In", "Product Viewed", "Order Completed", "Push Notification Tapped"}
var mobileScreens = [...]string{"Home", "Product Detail", "Cart", "Settings", "Login"}
var serverEvents = [...]string{"Order Completed", "Subscription Renewed", "Invoice Paid", "Refund Issued", "Account Deleted", "Signed In"}
