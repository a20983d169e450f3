// Command etcd is the etcd server used by the local control plane (envtest,
// make demo, make dev-up). It is the upstream server, started through its
// own entry point; nothing here changes its behaviour.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
