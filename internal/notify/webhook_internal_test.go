package notify

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeDNS is a resolver that answers A queries from hosts (names without
// the final dot), and every other query with no records. It speaks DNS
// over an in-memory stream to the Go resolver: no network, no real
// metadata service.
func fakeDNS(hosts map[string]net.IP) *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		client, server := net.Pipe()
		go func() {
			defer server.Close()
			for {
				var n uint16
				if binary.Read(server, binary.BigEndian, &n) != nil {
					return
				}
				q := make([]byte, n)
				if _, err := io.ReadFull(server, q); err != nil || len(q) < 12 {
					return
				}
				var labels []string
				end := 12
				for end < len(q) && q[end] != 0 {
					labels = append(labels, string(q[end+1:end+1+int(q[end])]))
					end += 1 + int(q[end])
				}
				end += 5 // the root label, type and class
				qtype := binary.BigEndian.Uint16(q[end-4:])
				reply := append([]byte{q[0], q[1], 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0}, q[12:end]...)
				if ip := hosts[strings.Join(labels, ".")].To4(); ip != nil && qtype == 1 {
					reply[7] = 1
					reply = append(reply, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
					reply = append(reply, ip...)
				}
				if binary.Write(server, binary.BigEndian, uint16(len(reply))) != nil {
					return
				}
				if _, err := server.Write(reply); err != nil {
					return
				}
			}
		}()
		return client, nil
	}}
}

// The address checked is the one dialed, after the name is looked up: a
// name that resolves to the instance metadata service is refused at dial
// time, for good (no retry can help), naming the address and the rule;
// one that resolves to loopback is delivered.
func TestWebhookRefusesLinkLocalWhenDialing(t *testing.T) {
	got := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got++
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	w := &Webhook{resolver: fakeDNS(map[string]net.IP{
		"metadata.example.test": net.ParseIP("169.254.169.254"),
		"hooks.example.test":    net.ParseIP("127.0.0.1"),
	})}
	n := Notification{ID: "d1", Payload: Payload{Event: "run_failed"}}

	err := w.Send(context.Background(), "http://metadata.example.test:"+port+"/latest/meta-data/", "a-secret-of-some-length", n)
	if err == nil || !IsPermanent(err) {
		t.Fatalf("delivery to a name resolving to 169.254.169.254: %v (permanent %v), want a permanent refusal", err, IsPermanent(err))
	}
	for _, want := range []string{"169.254.169.254", "link-local", "169.254.0.0/16"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not say %q", err, want)
		}
	}
	if got != 0 {
		t.Errorf("%d requests reached a server", got)
	}

	if err := w.Send(context.Background(), "http://hooks.example.test:"+port+"/hook", "a-secret-of-some-length", n); err != nil {
		t.Fatalf("delivery to a name resolving to loopback: %v", err)
	}
	if got != 1 {
		t.Errorf("%d requests delivered, want 1", got)
	}
}

// A literal address is refused before anything is dialed (even through a
// proxy, which would do the dialing itself).
func TestWebhookRefusesLiteralLinkLocal(t *testing.T) {
	n := Notification{ID: "d1", Payload: Payload{Event: "run_failed"}}
	for _, u := range []string{"http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/", "http://[fe80::1%25lo]:80/",
		"http://0.0.0.0:80/", "http://[::ffff:169.254.169.254]/"} {
		err := (&Webhook{}).Send(context.Background(), u, "a-secret-of-some-length", n)
		if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "the master delivers no webhook to") {
			t.Errorf("%s: %v (permanent %v), want a permanent refusal naming the rule", u, err, IsPermanent(err))
		}
	}
}
