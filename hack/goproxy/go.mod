module example.invalid/goproxy

go 1.22
