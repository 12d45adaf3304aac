package relay

import (
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the relay's Prometheus metrics, in a registry of the
// server's own (no package-level state).
type metrics struct {
	reg          *prometheus.Registry
	deposits     prometheus.Counter
	refusedBy    *prometheus.CounterVec
	delivered    prometheus.Counter
	expired      prometheus.Counter
	logins       prometheus.Counter
	loginRefused prometheus.Counter
}

func newMetrics(s *Server) *metrics {
	m := &metrics{
		reg:          prometheus.NewRegistry(),
		deposits:     prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_deposits_total", Help: "Envelopes deposited and synced."}),
		refusedBy:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshtalk_relay_deposits_refused_total", Help: "Deposits refused, by reason."}, []string{"reason"}),
		delivered:    prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_delivered_total", Help: "Envelopes delivered to and acked by their recipient."}),
		expired:      prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_expired_total", Help: "Envelopes removed unread at the end of their TTL."}),
		logins:       prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_logins_total", Help: "Successful logins."}),
		loginRefused: prometheus.NewCounter(prometheus.CounterOpts{Name: "meshtalk_relay_logins_refused_total", Help: "Logins refused (bad proof)."}),
	}
	gauge := func(name, help string, f func(Stats) float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, func() float64 { return f(s.Stats()) })
	}
	m.reg.MustRegister(m.deposits, m.refusedBy, m.delivered, m.expired, m.logins, m.loginRefused,
		gauge("meshtalk_relay_accounts", "Registered accounts.", func(stats Stats) float64 { return float64(stats.Accounts) }),
		gauge("meshtalk_relay_logged_in", "Clients logged in now.", func(stats Stats) float64 { return float64(stats.LoggedIn) }),
		gauge("meshtalk_relay_mailbox_items", "Envelopes held.", func(stats Stats) float64 { return float64(stats.MailboxItems) }),
		gauge("meshtalk_relay_mailbox_bytes", "Bytes of envelopes held.", func(stats Stats) float64 { return float64(stats.MailboxBytes) }),
		gauge("meshtalk_relay_drop_bytes", "Bytes of dropped files held.", func(stats Stats) float64 { return float64(stats.DropBytes) }),
		gauge("meshtalk_relay_circuits", "Relayed connections carried now.", func(stats Stats) float64 { return float64(stats.Circuits) }),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// refused counts a refused deposit by its error's kind.
func (m *metrics) refused(err error) {
	reason := "other"
	switch {
	case errors.Is(err, ErrQuota):
		reason = "quota"
	case errors.Is(err, ErrNotLoggedIn):
		reason = "not_logged_in"
	case errors.Is(err, ErrNotFound):
		reason = "unknown_recipient"
	case errors.Is(err, ErrTooLarge):
		reason = "too_large"
	case errors.Is(err, ErrNotAllowed):
		reason = "not_allowed"
	}
	m.refusedBy.WithLabelValues(reason).Inc()
}

// MetricsHandler serves the relay's metrics in Prometheus' format.
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.met.reg, promhttp.HandlerOpts{})
}
