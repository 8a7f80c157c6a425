package proxy

import (
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are one Server's Prometheus metrics (DESIGN.md §5). Every label
// value comes from a bounded set.
type metrics struct {
	reg               *prometheus.Registry
	connections       *prometheus.CounterVec
	sessionsActive    *prometheus.GaugeVec
	logins            *prometheus.CounterVec
	commands          *prometheus.CounterVec
	commandDuration   *prometheus.HistogramVec
	idleDuration      prometheus.Histogram
	bytes             *prometheus.CounterVec
	backendUp         *prometheus.GaugeVec
	backendDial       *prometheus.HistogramVec
	authThrottled     prometheus.Counter
	lookupDuration    prometheus.Histogram
	inspectionLost    prometheus.Counter
	panics            prometheus.CounterFunc
	bytesIn, bytesOut prometheus.Counter

	// Children of the vectors, looked up once: resolving label values
	// hashes and locks on every call, several times per login.
	commandCount *children[[2]string, prometheus.Counter]
	commandTime  *children[string, prometheus.Observer]
	activeBy     *children[string, prometheus.Gauge]
	dialBy       *children[string, prometheus.Observer]
	loginBy      *children[string, prometheus.Counter]
}

// children memoizes the children of a metric vector by label values. The
// label values come from bounded sets (see commandLabel), so it never
// grows without bound.
type children[K comparable, V any] struct {
	mu   sync.RWMutex
	m    map[K]V
	make func(K) V
}

func newChildren[K comparable, V any](make func(K) V) *children[K, V] {
	return &children[K, V]{m: map[K]V{}, make: make}
}

func (c *children[K, V]) get(k K) V {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	v = c.make(k)
	c.mu.Lock()
	c.m[k] = v
	c.mu.Unlock()
	return v
}

// knownCommands are the values of the command label; anything else is
// "other".
var knownCommands = map[string]bool{}

func init() {
	for _, c := range []string{
		"CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "ENABLE", "SELECT", "EXAMINE",
		"CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND",
		"IDLE", "CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE",
		"UID FETCH", "UID SEARCH", "UID STORE", "UID COPY", "UID MOVE", "UID EXPUNGE", "UID SORT", "UID THREAD",
		"ID", "COMPRESS", "GETQUOTA", "GETQUOTAROOT", "SETQUOTA", "GETACL", "SETACL", "DELETEACL", "MYRIGHTS",
		"LISTRIGHTS", "GETMETADATA", "SETMETADATA", "SORT", "THREAD", "ESEARCH", "NOTIFY",
	} {
		knownCommands[c] = true
	}
}

func commandLabel(name string) string {
	if knownCommands[name] {
		return name
	}
	return "other"
}

func statusLabel(s string) string {
	switch s {
	case "OK", "NO", "BAD", "BYE":
		return s
	}
	return "none"
}

func newMetrics() *metrics {
	reg := prometheus.NewRegistry()
	m := &metrics{reg: reg}
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m.connections = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapedge_connections_total", Help: "Client connections accepted, by listener."}, []string{"listener"})
	m.sessionsActive = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imapedge_sessions_active", Help: "Logged-in sessions being proxied, by backend."}, []string{"backend"})
	m.logins = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapedge_logins_total", Help: "Login attempts by result: ok, auth_failed, unavailable, refused."}, []string{"result"})
	m.commands = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapedge_commands_total", Help: "Completed commands of logged-in sessions, by command and status."}, []string{"command", "status"})
	m.commandDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imapedge_command_duration_seconds", Help: "Command durations, first line to tagged completion; IDLE is in imapedge_idle_duration_seconds.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}, []string{"command"})
	m.idleDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imapedge_idle_duration_seconds", Help: "IDLE commands, IDLE to its tagged completion.",
		Buckets: []float64{1, 10, 60, 300, 600, 1200, 1800, 3600}})
	m.bytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "imapedge_bytes_total", Help: "Bytes forwarded after login, by direction (in: client to backend, out: backend to client)."}, []string{"direction"})
	m.bytesIn, m.bytesOut = m.bytes.WithLabelValues("in"), m.bytes.WithLabelValues("out")
	m.backendUp = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "imapedge_backend_up", Help: "1 when the backend is considered up (health checks come later: configured backends are 1)."}, []string{"backend"})
	m.backendDial = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "imapedge_backend_dial_seconds", Help: "Backend connection set-up: dial, greeting and TLS.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}}, []string{"backend"})
	m.authThrottled = prometheus.NewCounter(prometheus.CounterOpts{Name: "imapedge_auth_throttled_total", Help: "Logins refused by failure throttling."})
	m.lookupDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "imapedge_lookup_duration_seconds", Help: "Routing lookups."})
	m.inspectionLost = prometheus.NewCounter(prometheus.CounterOpts{Name: "imapedge_inspection_lost_total", Help: "Sessions whose command stream could not be followed; their bytes were still forwarded."})
	m.panics = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "imapedge_panics_total", Help: "Panics recovered in connection goroutines."}, func() float64 { return float64(panicsTotal.Load()) })
	for _, c := range []prometheus.Collector{m.connections, m.sessionsActive, m.logins, m.commands, m.commandDuration, m.idleDuration, m.bytes,
		m.backendUp, m.backendDial, m.authThrottled, m.lookupDuration, m.inspectionLost, m.panics,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	for _, r := range []string{"ok", "auth_failed", "unavailable", "refused"} {
		m.logins.WithLabelValues(r)
	}
	m.commandCount = newChildren(func(k [2]string) prometheus.Counter { return m.commands.WithLabelValues(k[0], k[1]) })
	m.commandTime = newChildren(func(k string) prometheus.Observer { return m.commandDuration.WithLabelValues(k) })
	m.activeBy = newChildren(func(k string) prometheus.Gauge { return m.sessionsActive.WithLabelValues(k) })
	m.loginBy = newChildren(func(k string) prometheus.Counter { return m.logins.WithLabelValues(k) })
	m.dialBy = newChildren(func(k string) prometheus.Observer { return m.backendDial.WithLabelValues(k) })
	return m
}

// AdminHandler serves /metrics, /healthz and /readyz. None needs a token.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !s.ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	return mux
}
