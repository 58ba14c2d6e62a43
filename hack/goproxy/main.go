// goproxy: the smallest Go reverse proxy (net/http/httputil), the ceiling for one proxy hop on this
// machine in `make bench-gateway` (hack/bench_gateway.py).
//
//	goproxy -listen 127.0.0.1:0 -target http://127.0.0.1:8000   # prints "PORT <n>" when up
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	target := flag.String("target", "", "upstream base URL")
	flag.Parse()
	upstream, err := url.Parse(*target)
	if err != nil || upstream.Host == "" {
		log.Fatalf("-target must be a URL: %q", *target)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, proxy))
}
