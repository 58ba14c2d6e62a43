// goproxy: the smallest Go reverse proxy (net/http/httputil), the ceiling for one proxy hop on this
// machine in `make bench-gateway` (hack/bench_gateway.py); with -model, a model that answers every
// request with a small JSON body (so the model is never the bottleneck of the benchmark).
//
//	goproxy -listen 127.0.0.1:0 -target http://127.0.0.1:8000   # prints "PORT <n>" when up
//	goproxy -listen 127.0.0.1:0 -model
package main

import (
	"flag"
	"fmt"
	"io"
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
	model := flag.Bool("model", false, "answer every request with a small JSON body instead of proxying")
	flag.Parse()
	if *model {
		serve(*listen, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, _ := io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"model":"bench","received":%d}`, n)
		}))
		return
	}
	upstream, err := url.Parse(*target)
	if err != nil || upstream.Host == "" {
		log.Fatalf("-target must be a URL: %q", *target)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	proxy.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, MaxIdleConns: 1024}
	serve(*listen, proxy)
}

func serve(listen string, handler http.Handler) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stdout, "PORT %d\n", ln.Addr().(*net.TCPAddr).Port)
	log.Fatal(http.Serve(ln, handler))
}
