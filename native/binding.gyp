{
  "targets": [
    {
      "target_name": "shim6_tun",
      "sources": ["tun.c", "offload.c", "reader.c", "udp.c", "notify.c", "nflog.c", "bpfmap.c", "nftcounters.c", "rtnl.c", "clock.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
