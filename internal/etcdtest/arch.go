package etcdtest

import "runtime"

// goarch is the value etcd wants in ETCD_UNSUPPORTED_ARCH on architectures
// it does not officially support (harmless elsewhere).
func goarch() string { return runtime.GOARCH }
