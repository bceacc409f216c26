package bluegreen

import (
	"crypto/sha256"
	"time"
)

// check re-reads the files and swaps in a new generation when any changed.
// A file that cannot be read or parsed, or that held records and now holds
// none (caught while being written), leaves the old data serving; the error
// is logged once (until it changes) and counted.
func (l *loader) check() {
	old := l.data.Load()
	contents, bad, err := l.read()
	if err != nil {
		l.fail([][2]string{bad}, err)
		return
	}
	var changed [][2]string
	for _, f := range l.files() {
		if sha256.Sum256(contents[f[1]]) != old.hashes[f[1]] {
			changed = append(changed, f)
		}
	}
	if len(changed) == 0 {
		l.mu.Lock()
		l.lastErr = ""
		l.mu.Unlock()
		return
	}
	d, err := l.build(contents, old)
	if err != nil {
		l.fail(changed, err)
		return
	}
	l.data.Store(d)
	l.warnShadowed(d)
	l.warnFiles(d)
	l.mu.Lock()
	l.lastErr = ""
	l.mu.Unlock()
	for _, f := range changed {
		zoneReloads.WithLabelValues(l.cfg.name, f[0], "success").Inc()
	}
	log.Infof("Reloaded zone files of switch %s", l.cfg.name)
}

func (l *loader) fail(changed [][2]string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// Count and log each failure once, not at every check while the file
	// stays broken.
	if msg := err.Error(); msg != l.lastErr {
		for _, f := range changed {
			zoneReloads.WithLabelValues(l.cfg.name, f[0], "error").Inc()
		}
		l.lastErr = msg
		log.Errorf("Reload of switch %s failed, old records keep serving: %s", l.cfg.name, msg)
	}
}

// start begins checking the files every reload interval.
func (l *loader) start() {
	if l.cfg.reload == 0 || l.done != nil {
		return
	}
	l.done = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(l.cfg.reload)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				l.check()
			}
		}
	}()
}

// stop ends the checks and waits for the goroutine to exit.
func (l *loader) stop() {
	if l.done == nil {
		return
	}
	close(l.done)
	l.wg.Wait()
	l.done = nil
}
