package bluegreen

import (
	"sync"

	"github.com/bluegreen-dns/bluegreen/plugin/bluegreen/health"
)

// workers are an instance's background goroutines for one switch: the zone
// file checks and the health probes.
type workers struct {
	ld     *loader
	prober *health.Prober
}

func (w *workers) start() {
	w.ld.start()
	w.prober.Start()
}

func (w *workers) stop() {
	w.ld.stop()
	w.prober.Stop()
}

// The running workers of each switch. A new instance's workers take over
// from the old ones when it starts, and the old ones take over again when
// the reload fails: caddy runs the new instance's startup hooks before it
// binds the new servers, and never shuts that instance down when binding
// fails, so without the handover its prober would go on probing (with the
// failed Corefile's checks) beside the old one, and its loader would keep
// the failed instance's zones in memory for good.
var (
	liveMu sync.Mutex
	live   = map[string]*workers{}
)

// takeOver starts w as switch name's workers and stops the ones it takes
// over from. Starting workers that run already does nothing.
func takeOver(name string, w *workers) {
	liveMu.Lock()
	defer liveMu.Unlock()
	old := live[name]
	live[name] = w
	if old != nil && old != w {
		old.stop()
	}
	w.start()
}

// release stops w, and forgets it when it is switch name's workers.
func release(name string, w *workers) {
	liveMu.Lock()
	defer liveMu.Unlock()
	if live[name] == w {
		delete(live, name)
	}
	w.stop()
}
