// Package deploy holds what an operator deploys kernelgate with: the
// images (Containerfile, kernels/python/Containerfile, images.sh), the Helm
// chart (helm/kernelgate), the systemd unit (systemd/) and the HAProxy
// configuration for a replica group (haproxy/, run by the replication tests
// in cmd/kernelgate and by make ha-bench), and the tests
// that build, render, install and verify them. It has no Go code of its own.
package deploy
