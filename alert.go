package muster

import (
	"fmt"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// MSXOperator is the master's own operator (SQL Server's MSXOperator). It
// exists from the start, with no address until one is set, and cannot be
// deleted.
const MSXOperator = "MSXOperator"

// Operator is who alerts notify: a webhook, an e-mail address, or both.
type Operator struct {
	Name      string    `json:"name"`
	Webhook   string    `json:"webhook"`
	Email     string    `json:"email"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// RedactWebhook returns a webhook URL as shown to a key below admin: its
// scheme and host, with "/…" for the rest. The path and query of a webhook
// often carry its credential (a chat service's incoming webhook, say).
func RedactWebhook(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	// The authority ends at the first '/', '?' or '#': an '@' after it
	// (in a query's token, say) is not user information.
	host, tail := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host, tail = rest[:i], strings.TrimPrefix(rest[i:], "/")
	}
	if i := strings.LastIndex(host, "@"); i >= 0 {
		host = host[i+1:] // user information is a credential too
	}
	if tail == "" {
		return scheme + "://" + host
	}
	return scheme + "://" + host + "/…"
}

// Redacted returns o with its webhook as RedactWebhook shows it.
func (o Operator) Redacted() Operator {
	o.Webhook = RedactWebhook(o.Webhook)
	return o
}

// MaxWebhookLen bounds a webhook URL.
const MaxWebhookLen = 2048

// ValidateOperatorName checks an operator name: the rules of job names.
func ValidateOperatorName(field, name string) error {
	if msg := validObjectName(name); msg != "" {
		return Errorf(EINVALID, "%s: %s", field, msg)
	}
	return nil
}

// awsMetadataV6 is the IPv6 address of the AWS instance metadata service.
var awsMetadataV6 = netip.MustParseAddr("fd00:ec2::254")

// WebhookAddrRefused says why the master delivers no webhook to ip, or ""
// when it may. Link-local addresses are where cloud instance metadata
// services answer (169.254.169.254, fd00:ec2::254), handing whoever asks
// the host's cloud credentials; an unspecified address reaches the
// master's own host. Loopback and private addresses are allowed: internal
// receivers are common (see docs/security.md).
func WebhookAddrRefused(ip netip.Addr) string {
	ip = ip.Unmap()
	var what string
	switch {
	case ip.IsUnspecified():
		what = "unspecified (0.0.0.0 or ::)"
	case ip.Is4() && ip.IsLinkLocalUnicast():
		what = "link-local (169.254.0.0/16), where cloud instance metadata services answer"
	case ip.IsLinkLocalUnicast():
		what = "link-local (fe80::/10)"
	case ip.WithZone("") == awsMetadataV6:
		what = "the AWS instance metadata service (fd00:ec2::254), link-local in effect"
	default:
		return ""
	}
	return fmt.Sprintf("%s is %s: the master delivers no webhook to link-local or unspecified addresses", ip, what)
}

// ValidateWebhook checks a webhook address: an absolute http or https URL,
// whose host, when it is an IP address, is one WebhookAddrRefused allows.
// (A name is checked on each address it resolves to when a notification is
// sent.) "" (no webhook) is valid.
func ValidateWebhook(field, u string) error {
	if u == "" {
		return nil
	}
	if len(u) > MaxWebhookLen {
		return Errorf(EINVALID, "%s: a webhook URL is at most %d characters", field, MaxWebhookLen)
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
		return Errorf(EINVALID, "%s: %q is not an http or https URL such as https://hooks.example.com/muster", field, u)
	}
	if ip, err := netip.ParseAddr(p.Hostname()); err == nil {
		if why := WebhookAddrRefused(ip); why != "" {
			return Errorf(EINVALID, "%s: %s", field, why)
		}
	}
	return nil
}

// ValidateEmail checks an e-mail address: one bare address, such as
// ops@example.com, without a display name. "" (no e-mail) is valid.
func ValidateEmail(field, addr string) error {
	if addr == "" {
		return nil
	}
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Name != "" || a.Address != addr || strings.ContainsAny(addr, "\r\n") {
		return Errorf(EINVALID, "%s: %q is not an e-mail address such as ops@example.com", field, addr)
	}
	return nil
}

// Bounds of a no_success alert's window.
const (
	DefaultNoSuccessWindow = 26 * time.Hour
	MinNoSuccessWindow     = time.Minute
	MaxNoSuccessWindow     = 366 * 24 * time.Hour
)

// MaxAlertOperators bounds the operators one alert notifies.
const MaxAlertOperators = 20

// Alert says which events notify which operators (SQL Server's alerts and
// notifications). Empty Job and Target match any; MinSeverity 0 matches
// every severity.
type Alert struct {
	Name        string    `json:"name"`
	Event       EventName `json:"event"`
	Job         string    `json:"job"`
	Target      string    `json:"target"`
	MinSeverity Severity  `json:"min_severity"`
	// Window is, for no_success, how long a job may go without a
	// successful run on a target before the alert fires.
	Window Duration `json:"window,omitempty"`
	Notify []string `json:"notify"`
	// Enabled is false for an alert that was disabled: it matches no
	// event until it is enabled again.
	Enabled   bool      `json:"enabled"`
	CreatedAt time.Time `json:"created_at"`
}

// Validate checks a's structure and fills in the defaults: the target name
// normalized, and the window of a no_success alert. It does not check that
// the job, target and operators exist (the catalog does).
func (a *Alert) Validate() error {
	if msg := validObjectName(a.Name); msg != "" {
		return Errorf(EINVALID, "alert: name: %s", msg)
	}
	fail := func(format string, args ...any) error {
		return Errorf(EINVALID, "alert %q: "+format, append([]any{a.Name}, args...)...)
	}
	if a.Event != EventAny && !a.Event.Valid() {
		return fail("event: %q is not an event; use one of %s, or any", a.Event, eventList())
	}
	if a.Job != "" {
		if msg := validObjectName(a.Job); msg != "" {
			return fail("job: %s", msg)
		}
		if a.Event != EventAny && !a.Event.NamesJob() {
			return fail("job: %s names no job: the alert would never fire", a.Event)
		}
	}
	if a.Target != "" {
		a.Target = NormalizeTargetName(a.Target)
		if err := ValidateTargetName("target", a.Target); err != nil {
			return fail("%s", err.Error())
		}
	}
	if a.MinSeverity != 0 && !a.MinSeverity.Valid() {
		return fail("min_severity: 1 (info) to 4 (critical), not %d", a.MinSeverity)
	}
	if s := a.Event.Severity(); a.Event != EventAny && a.MinSeverity > s {
		return fail("min_severity: %s is raised at %d (%s), below %d (%s): the alert would never fire", a.Event, s, s,
			a.MinSeverity, a.MinSeverity)
	}
	switch {
	case a.Event != EventNoSuccess && a.Window != 0:
		return fail("window: only a no_success alert has a window")
	case a.Event == EventNoSuccess && a.Window == 0:
		a.Window = Duration(DefaultNoSuccessWindow)
	case a.Event == EventNoSuccess && (a.Window.Std() < MinNoSuccessWindow || a.Window.Std() > MaxNoSuccessWindow):
		return fail("window: from %s to %s, not %s", MinNoSuccessWindow, MaxNoSuccessWindow, a.Window)
	}
	if len(a.Notify) == 0 {
		return fail("notify: name at least one operator")
	}
	if len(a.Notify) > MaxAlertOperators {
		return fail("notify: at most %d operators", MaxAlertOperators)
	}
	seen := map[string]bool{}
	for i, op := range a.Notify {
		if err := ValidateOperatorName(fmt.Sprintf("notify[%d]", i), op); err != nil {
			return fail("%s", err.Error())
		}
		if seen[op] {
			return fail("notify[%d]: operator %q is listed twice", i, op)
		}
		seen[op] = true
	}
	return nil
}

// Matches reports whether the alert fires for e. A no_success alert
// matches only the events of its own window.
func (a Alert) Matches(e Event) bool {
	switch {
	case a.Event != EventAny && a.Event != e.Name:
		return false
	case a.Job != "" && a.Job != e.Job:
		return false
	case a.Target != "" && a.Target != e.Target:
		return false
	case e.Severity < a.MinSeverity:
		return false
	case a.Event == EventNoSuccess && a.Window != e.Window:
		return false
	}
	return true
}

func eventList() string {
	names := make([]string, len(EventNames))
	for i, n := range EventNames {
		names[i] = string(n)
	}
	return strings.Join(names, ", ")
}

// DeliveryStatus is where a notification is in its life:
//
//	pending ──sent──────────────────────▶ delivered
//	   └──refused, or out of attempts──▶ failed
type DeliveryStatus string

// Delivery statuses.
const (
	DeliveryPending   DeliveryStatus = "pending"
	DeliveryDelivered DeliveryStatus = "delivered"
	DeliveryFailed    DeliveryStatus = "failed"
)

// ValidateDeliveryStatus checks a filter of notifications by status: a
// delivery status, or "" for any.
func ValidateDeliveryStatus(field string, s DeliveryStatus) error {
	switch s {
	case "", DeliveryPending, DeliveryDelivered, DeliveryFailed:
		return nil
	}
	return Errorf(EINVALID, "%s: %q is not a delivery status; use pending, delivered or failed", field, s)
}

// Notification channels. A delivery on ChannelNone records an alert that
// fired for an operator with no address.
const (
	ChannelWebhook = "webhook"
	ChannelEmail   = "email"
	ChannelNone    = "none"
)

// Delivery is one notification of one event, by one alert, to one operator
// on one channel: what `muster alert history` shows.
type Delivery struct {
	// ID is sent with every attempt (the Muster-Delivery header), so a
	// receiver can drop repeats.
	ID            string         `json:"id"`
	Event         Event          `json:"event"`
	Alert         string         `json:"alert"`
	Operator      string         `json:"operator"`
	Channel       string         `json:"channel"`
	Address       string         `json:"address"`
	Status        DeliveryStatus `json:"status"`
	Attempts      int            `json:"attempts"`
	LastError     string         `json:"last_error"`
	CreatedAt     time.Time      `json:"created_at"`
	NextAttemptAt *time.Time     `json:"next_attempt_at"`
	DeliveredAt   *time.Time     `json:"delivered_at"`
}
