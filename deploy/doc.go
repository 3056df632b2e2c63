// Package deploy holds what ships PXE Pilot (Dockerfile, compose example,
// systemd unit, Prometheus and Grafana files) and the tests that keep those
// files honest against the real binary.
//
// CI has no Docker engine, so the image itself is never built here. What can
// be proven without one is proven with the real parts:
//
//   - the Go build line is parsed out of the Dockerfile and run as it stands,
//     cross-compiling for linux/amd64 and linux/arm64; the ELF files and Go's
//     own build record say whether they are static, stripped and stamped;
//   - the appliance built that way runs on loopback, serves a few boots, and
//     its live /metrics passes `promtool check metrics` and carries every
//     series the Grafana dashboard and the alert rules query;
//   - the file capabilities the Dockerfile sets are applied to that binary,
//     which then runs as the image's non-root user inside a network namespace
//     this test creates, with the bounding set `docker run --cap-drop ALL
//     --cap-add ...` would give, and binds TCP 80 and UDP 69, 67 and 4011;
//   - `systemd-analyze verify` and promtool check the unit and the rules;
//   - every environment variable the code reads is in the compose file, the
//     systemd env example and the README's configuration table.
package deploy
