package vault

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/certvault/certvault/vault/core"

	"github.com/prometheus/client_golang/prometheus"
)

// certCollector reports, at scrape time, each certificate's expiry and the
// outbox's depth and oldest message. A scrape reads the whole certificate
// list once; the scheduler itself never does.
type certCollector struct {
	n                           *Node
	expiry, depth, oldest, dead *prometheus.Desc
	renewalDue, halted          *prometheus.Desc
}

func newCertCollector(n *Node) *certCollector {
	return &certCollector{
		n:      n,
		expiry: prometheus.NewDesc("certvault_certificate_expiry_timestamp_seconds", "Expiry of each certificate's current version (Unix seconds).", []string{"name"}, nil),
		depth:  prometheus.NewDesc("certvault_outbox_messages", "Messages (mail, events) waiting to be delivered.", nil, nil),
		oldest: prometheus.NewDesc("certvault_outbox_oldest_age_seconds", "Age of the oldest message waiting to be delivered (0 when none).", nil, nil),
		dead:   prometheus.NewDesc("certvault_outbox_dead_letters", "Messages given up on after repeated failures.", nil, nil),
		renewalDue: prometheus.NewDesc("certvault_certificate_renewal_due_timestamp_seconds",
			"When the current version of each automatically renewed certificate is planned to renew (Unix seconds).", []string{"name"}, nil),
		halted: prometheus.NewDesc("certvault_certificate_renewal_halted",
			"1 for each certificate whose automatic renewal the renewal brake halted (it waits for a person).", []string{"name"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *certCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.expiry
	ch <- c.depth
	ch <- c.oldest
	ch <- c.dead
	ch <- c.renewalDue
	ch <- c.halted
}

// Collect implements prometheus.Collector.
func (c *certCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.n.Store
	metas, _ := st.List("meta/"+core.KindCertificates+"/", "", 0)
	for _, e := range metas {
		var m core.ObjectMeta
		if json.Unmarshal(e.Value, &m) != nil || m.Deleted != nil || m.Summary.Expires == nil {
			continue
		}
		name := e.Key[strings.LastIndexByte(e.Key, '/')+1:]
		ch <- prometheus.MustNewConstMetric(c.expiry, prometheus.GaugeValue, float64(*m.Summary.Expires), name)
		if due, _, ok := strings.Cut(strings.TrimPrefix(m.Plan, core.SchedPrefix), "/"); ok {
			if s, err := strconv.ParseInt(due, 10, 64); err == nil {
				ch <- prometheus.MustNewConstMetric(c.renewalDue, prometheus.GaugeValue, float64(s), name)
			}
		}
		if m.Halted != nil {
			ch <- prometheus.MustNewConstMetric(c.halted, prometheus.GaugeValue, 1, name)
		}
	}
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
