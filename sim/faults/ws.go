package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// watcher is one city-wide control-room screen on one instance's /ws,
// subscribed to incidents. It checks what the streams package promises
// (CONTRACT section 4): incident events arrive in seq order with no gap,
// and after a reconnect a resume (since and epoch) gives exactly what was
// missed, or a reset and a fresh snapshot, never a silent gap.
type watcher struct {
	c                           *Iocd
	pass                        string
	mu                          sync.Mutex
	last                        int64 // seq of the last event handled (or the snapshot's)
	epoch                       string
	gaps, repeats, resets, conn int
	err                         error
}

func (w *watcher) run(ctx context.Context) {
	for ctx.Err() == nil {
		err := w.session(ctx)
		w.mu.Lock()
		w.err = err
		w.mu.Unlock()
		if sleep(ctx, 300*time.Millisecond) != nil {
			return
		}
	}
}

func (w *watcher) login(ctx context.Context) (string, error) {
	body, _ := json.Marshal(map[string]string{"name": "admin", "password": w.pass})
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+w.c.httpAddr+"/api/v1/login", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Token string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Token == "" {
		return "", fmt.Errorf("login: status %d", resp.StatusCode)
	}
	return out.Token, nil
}

// session is one connection: subscribe (resuming when it can), then read
// until the connection ends.
func (w *watcher) session(ctx context.Context) error {
	token, err := w.login(ctx)
	if err != nil {
		return err
	}
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.DialContext(ctx, "ws://"+w.c.httpAddr+"/ws", http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	w.mu.Lock()
	w.conn++
	sub := map[string]any{"type": "subscribe", "layers": []string{"incidents"}}
	resuming := w.epoch != ""
	if resuming {
		sub["since"], sub["epoch"] = w.last, w.epoch
	}
	w.mu.Unlock()
	if err := conn.WriteJSON(sub); err != nil {
		return err
	}
	for {
		conn.SetReadDeadline(time.Now().Add(60 * time.Second))
		_, raw, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		var f struct {
			Type  string `json:"type"`
			Seq   int64  `json:"seq"`
			Epoch string `json:"epoch"`
		}
		if json.Unmarshal(raw, &f) != nil {
			continue
		}
		w.mu.Lock()
		switch f.Type {
		case "welcome":
			if w.epoch != "" && f.Epoch != w.epoch {
				w.resets++ // a new log lineage: the next snapshot starts over
			}
		case "reset":
			w.resets++
		case "snapshot":
			w.last = f.Seq
			if f.Epoch != "" {
				w.epoch = f.Epoch
			}
		case "incident":
			switch {
			case f.Seq == w.last+1:
				w.last = f.Seq
			case f.Seq <= w.last:
				w.repeats++
			default:
				w.gaps++
				w.last = f.Seq
			}
		}
		if w.epoch == "" && f.Epoch != "" {
			w.epoch = f.Epoch
		}
		w.mu.Unlock()
	}
}

// watchers starts one watcher per instance.
func (w *World) startWatchers(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	w.stopWatchers = cancel
	for _, c := range w.Iocds {
		wt := &watcher{c: c, pass: w.s.adminPass}
		w.watchers = append(w.watchers, wt)
		w.watchWG.Add(1)
		go func() { defer w.watchWG.Done(); wt.run(ctx) }()
	}
}

// judgeWatchers waits until every watcher has caught up with the last
// event in the log, then stops them and reports.
func (w *World) judgeWatchers(ctx context.Context, f *Figures) {
	var maxSeq int64
	w.Pool.QueryRow(ctx, `SELECT coalesce(max(seq), 0) FROM incident_events`).Scan(&maxSeq)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		behind := 0
		for _, wt := range w.watchers {
			wt.mu.Lock()
			if wt.last < maxSeq {
				behind++
			}
			wt.mu.Unlock()
		}
		if behind == 0 {
			break
		}
		sleep(ctx, 250*time.Millisecond)
	}
	w.stopWatchers()
	w.watchWG.Wait()
	for _, wt := range w.watchers {
		f.WSClients++
		f.WSGaps += wt.gaps
		f.WSRepeats += wt.repeats
		f.WSResets += wt.resets
		f.WSReconnects += max(wt.conn-1, 0)
		if wt.last < maxSeq {
			f.WSBehind++
		}
	}
	f.WSLastSeq = maxSeq
}
