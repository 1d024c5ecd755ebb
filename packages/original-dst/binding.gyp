{
  "targets": [
    {
      "target_name": "original_dst",
      "sources": ["src/original_dst.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
