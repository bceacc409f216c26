package bluegreen

// Ready implements the ready.Readiness interface: true once the zone files
// are loaded.
func (b *Bluegreen) Ready() bool { return b.loader.data.Load() != nil }
