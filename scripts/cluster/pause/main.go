// The pod sandbox's process: holds the pod's namespaces open and reaps
// nothing else; exits on SIGINT or SIGTERM. Built here because no registry
// with registry.k8s.io/pause is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
}
