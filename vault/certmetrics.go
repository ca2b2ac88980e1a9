package vault

import (
	"cmp"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/catalog"
	"github.com/certvault/certvault/vault/core"

	"github.com/prometheus/client_golang/prometheus"
)

// certCollector reports, at scrape time, the certificates by expiry and
// the outbox's depth and oldest message. It reads the node's catalog
// (vault/catalog), which a scrape brings up to date by decoding only the
// certificates written since the last one. Per-certificate series
// (expiry, renewal due) are given to the MetricsCertificates expiring
// soonest, so that a vault of 100,000 certificates does not hand
// Prometheus 200,000 series a scrape; the totals count every one.
type certCollector struct {
	n                           *Node
	expiry, depth, oldest, dead *prometheus.Desc
	renewalDue, halted          *prometheus.Desc
	total, expiring, expired    *prometheus.Desc
	haltedTotal                 *prometheus.Desc
}

// metricsCertificatesDefault is Options.MetricsCertificates' default.
const metricsCertificatesDefault = 10000

// expiringWindows are the windows of certvault_certificates_expiring, in
// days.
var expiringWindows = []int{7, 30, 90}

func newCertCollector(n *Node) *certCollector {
	return &certCollector{
		n:      n,
		expiry: prometheus.NewDesc("certvault_certificate_expiry_timestamp_seconds", "Expiry of the current version of each certificate among those expiring soonest (--metrics-certificates of them; Unix seconds).", []string{"name"}, nil),
		depth:  prometheus.NewDesc("certvault_outbox_messages", "Messages (mail, events) waiting to be delivered.", nil, nil),
		oldest: prometheus.NewDesc("certvault_outbox_oldest_age_seconds", "Age of the oldest message waiting to be delivered (0 when none).", nil, nil),
		dead:   prometheus.NewDesc("certvault_outbox_dead_letters", "Messages given up on after repeated failures.", nil, nil),
		renewalDue: prometheus.NewDesc("certvault_certificate_renewal_due_timestamp_seconds",
			"When the current version of each automatically renewed certificate among those expiring soonest is planned to renew (Unix seconds).", []string{"name"}, nil),
		halted: prometheus.NewDesc("certvault_certificate_renewal_halted",
			"1 for each certificate whose automatic renewal the renewal brake halted (it waits for a person).", []string{"name"}, nil),
		total: prometheus.NewDesc("certvault_certificates",
			"Certificates that have a current version (not deleted).", nil, nil),
		expiring: prometheus.NewDesc("certvault_certificates_expiring",
			"Certificates whose current version expires within the window (and has not expired).", []string{"within_days"}, nil),
		expired: prometheus.NewDesc("certvault_certificates_expired",
			"Certificates whose current version has expired.", nil, nil),
		haltedTotal: prometheus.NewDesc("certvault_certificates_renewal_halted",
			"Certificates whose automatic renewal the renewal brake halted.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.expiry, c.depth, c.oldest, c.dead, c.renewalDue, c.halted,
		c.total, c.expiring, c.expired, c.haltedTotal} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Store
	c.collectCertificates(ch, time.Now())
	out, _ := st.List(core.OutboxPrefix, "", 0)
	oldest := 0.0
	for _, e := range out {
		var m core.OutboxMessage
		if json.Unmarshal(e.Value, &m) == nil && m.Created > 0 {
			oldest = max(oldest, time.Since(time.Unix(m.Created, 0)).Seconds())
		}
	}
	dead, _ := st.List(core.OutboxDeadPrefix, "", 0)
	ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(len(out)))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, oldest)
	ch <- prometheus.MustNewConstMetric(c.dead, prometheus.GaugeValue, float64(len(dead)))
}

// collectCertificates sends the totals and the series of the
// certificates expiring soonest.
func (c *certCollector) collectCertificates(ch chan<- prometheus.Metric, now time.Time) {
	objs, err := c.n.catalog.Objects(core.KindCertificates)
	if err != nil {
		c.n.Log.Error("metrics: read the certificates' catalog", "err", err)
		return
	}
	limit := c.n.opts.MetricsCertificates
	if limit == 0 {
		limit = metricsCertificatesDefault
	}
	var live []*catalog.Object
	expiring := make([]int, len(expiringWindows))
	expired, halted := 0, 0
	for _, o := range objs {
		if o.RenewalHalted {
			halted++
			ch <- prometheus.MustNewConstMetric(c.halted, prometheus.GaugeValue, 1, o.Canonical)
		}
		if o.Pending || o.Attributes.Expires == nil {
			continue
		}
		live = append(live, o)
		left := time.Unix(*o.Attributes.Expires, 0).Sub(now)
		if left <= 0 {
			expired++
			continue
		}
		for i, d := range expiringWindows {
			if left <= time.Duration(d)*24*time.Hour {
				expiring[i]++
			}
		}
	}
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(len(live)))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.GaugeValue, float64(expired))
	ch <- prometheus.MustNewConstMetric(c.haltedTotal, prometheus.GaugeValue, float64(halted))
	for i, d := range expiringWindows {
		ch <- prometheus.MustNewConstMetric(c.expiring, prometheus.GaugeValue, float64(expiring[i]), strconv.Itoa(d))
	}
	if limit < 0 {
		return
	}
	if len(live) > limit {
		// The soonest first; equal expiries by name, so that the set
		// stays the same from one scrape to the next.
		slices.SortFunc(live, func(a, b *catalog.Object) int {
			if x, y := *a.Attributes.Expires, *b.Attributes.Expires; x != y {
				return cmp.Compare(x, y)
			}
			return strings.Compare(a.Canonical, b.Canonical)
		})
		live = live[:limit]
	}
	for _, o := range live {
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(*o.Attributes.Expires), o.Canonical)
		if o.RenewalDue != 0 {
			ch <- prometheus.MustNewConstMetric(c.renewalDue, prometheus.GaugeValue, float64(o.RenewalDue), o.Canonical)
		}
	}
}
