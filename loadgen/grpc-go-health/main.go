// grpc-go-health: grpc-go's stock health service (google.golang.org/grpc/health) and
// nothing else, the reference server of the bench's latency scenario. Built offline
// by `cargo xtask bench` against Debian's golang-google-grpc-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o target/grpc-go-health ./loadgen/grpc-go-health
//
//	grpc-go-health --listen 127.0.0.1:0
//
// It prints `listening on ADDR` on stderr once it listens (with the port the kernel
// gave it for port 0) and stops on SIGTERM/SIGINT.
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: cannot listen on %s: %v\n", *listen, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	// NewServer's status for "" (the whole server) is SERVING.
	healthpb.RegisterHealthServer(server, health.NewServer())
	fmt.Fprintf(os.Stderr, "listening on %s\n", lis.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		server.Stop()
	}()
	if err := server.Serve(lis); err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(1)
	}
}
