// Command vaultsync-node runs the test/node agent: a stand-in kubelet for
// the local control plane that runs the Pods bound to its Node with runc,
// each in a network namespace of its own with only loopback. It needs root.
//
//	vaultsync-node --kubeconfig admin.kubeconfig --state-dir /tmp/node \
//	    --image bin/image/vaultsync.tar --image-ref vaultsync:dev2 --host-port 39000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/vaultsync/vaultsync/test/node"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	var images, refs, ports, namespaces listFlag
	kubeconfig := flag.String("kubeconfig", os.Getenv("KUBECONFIG"), "admin kubeconfig of the control plane")
	nodeName := flag.String("node-name", "vaultsync-node", "name of the Node")
	stateDir := flag.String("state-dir", "", "state directory of this agent (required; private to it)")
	backoff := flag.Duration("backoff-base", 10*time.Second, "first restart back-off of a crashing container (doubles up to 5m)")
	flag.Var(&images, "image", "OCI archive of images Pods may run (repeatable)")
	flag.Var(&refs, "image-ref", "further name of the first archive's image, such as vaultsync:dev2 (repeatable)")
	flag.Var(&ports, "host-port", "host loopback port reachable from every Pod at 127.0.0.1:<port> (repeatable; the API server's is always added)")
	flag.Var(&namespaces, "service-namespace", "namespace whose Services get loopback listeners (repeatable; default all)")
	flag.Parse()
	if *stateDir == "" || *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "vaultsync-node: --state-dir and --kubeconfig are required")
		os.Exit(2)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaultsync-node:", err)
		os.Exit(1)
	}
	o := node.Options{Config: cfg, NodeName: *nodeName, StateDir: *stateDir, BackoffBase: *backoff, ServiceNamespaces: namespaces}
	for i, im := range images {
		a := node.ImageArchive{Path: im}
		if i == 0 {
			a.ExtraRefs = refs
		}
		o.Images = append(o.Images, a)
	}
	for _, p := range ports {
		n, err := strconv.Atoi(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "vaultsync-node: --host-port:", err)
			os.Exit(2)
		}
		o.HostPorts = append(o.HostPorts, n)
	}
	a, err := node.New(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vaultsync-node:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := a.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "vaultsync-node:", err)
		a.Stop()
		os.Exit(1)
	}
	fmt.Printf("vaultsync-node ready node=%s services=%s/services.json\n", a.NodeName(), *stateDir)
	<-ctx.Done()
	a.Stop()
}
