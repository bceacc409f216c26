// Package bluegreen is a CoreDNS plugin that answers every query from one of
// several pools of records (blue, green, ...), chosen per client by weight,
// so traffic moves between deployments at the DNS layer.
//
// # Files
//
//	setup.go    setup and the instance's hooks
//	config.go   the parsed block (config) and the defaults
//	parse.go    one function per Corefile property, then validate
//	bluegreen.go, ecs.go, ttl.go, prepared.go, explain.go   the query path
//	wire.go     prepared answers as bytes, written when nothing but the
//	            socket (and the metrics plugin) would see the message
//	loader.go   zoneData and loader: read the zone files, build a generation
//	reload.go   the reload ticker and check: re-read the files when they change,
//	            and sign the views again when their signatures are due
//	dnssec.go   dnssec key file: keys, and the signer (CoreDNS's dnssec plugin)
//	            that zones/sign.go uses to sign each view at load
//	probes.go, handover.go, store.go   health probes, workers, open stores
//
// # Query path
//
//	ServeDNS
//	  │ client key (ECS or source address) ─► pin? ─► pick.Select(snapshot)
//	  ▼                                               │ pool index
//	prepared answers (prepared.go) ◄──────────────────┘
//	  │ a miss looks the name up in the pool's view and keeps the result
//	  ▼
//	views (zones.Zone: base + one pool, per origin) ─► answer, TTL, ECS scope
//	  │
//	  ▼
//	a kept answer's bytes (wire.go), its ID, RD/CD, TTLs and OPT set per
//	query; else a *dns.Msg of copies for the writer, as plugins expect
//
// The snapshot (state.Snapshot: weights, cumulative sums, next change) is
// read through an atomic pointer; the query path takes no lock, touches no
// store and allocates nothing for the selection.
//
// # Process-wide registries
//
// State that must outlive a Corefile reload lives in four registries, each
// with one owner. The hooks that drive them are registered in setup.go
// (hooks and adminGroup):
//
//	registry          owner               startup          reload (new instance)          failed reload            final shutdown
//	switches          state (Configure)   -                setup reconfigures the switch  old config set back      watch stopped
//	workers           handover.go (live)  takeOver         new takes over on startup;     old takes back over      -
//	                                                       old released on shutdown
//	admin sockets     admin (live)        bind, serve      new Server becomes current     old Server current       socket closed
//	                                                       on the open socket             again (undo)
//	stores            store.go (stores)   opened at setup  shared by both instances       kept                     closed
//
// caddy runs the new instance's setup and startup hooks before the old
// instance's shutdown hooks; a shutdown hook stops only what the new
// instance has not taken over.
package bluegreen
