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
	l.store(d)
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

// resignIfDue signs the views again once their oldest signatures are
// resignAfter old. A failure keeps the old generation serving (its
// signatures are still valid for two days) and is retried at the next
// tick.
func (l *loader) resignIfDue() {
	old := l.data.Load()
	if old == nil || old.signedAt.IsZero() || l.now().Sub(old.signedAt) < resignAfter {
		return
	}
	contents, bad, err := l.read()
	if err != nil {
		l.fail([][2]string{bad}, err)
		return
	}
	d, err := l.buildSigned(contents, old, true)
	if err != nil {
		l.fail(l.files(), err)
		return
	}
	l.store(d)
	log.Infof("Signed the zones of switch %s again (signatures made %s)", l.cfg.name, old.signedAt.UTC().Format(time.RFC3339))
}

// resignCheck is how often a signed switch whose files are not re-read
// (reload 0) checks whether its signatures are due.
const resignCheck = time.Hour

// start begins checking the files every reload interval, and (when the
// switch signs its zones) whether the signatures are due.
func (l *loader) start() {
	signing := len(l.cfg.signers) > 0
	if (l.cfg.reload == 0 && !signing) || l.done != nil {
		return
	}
	every := l.cfg.reload
	if every == 0 {
		every = resignCheck
	}
	l.done = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-t.C:
				if l.cfg.reload != 0 {
					l.check()
				}
				if signing {
					l.resignIfDue()
				}
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
