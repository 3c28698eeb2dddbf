// Package deploy holds what an operator deploys kernelgate with: the
// images (Containerfile, kernels/python/Containerfile, images.sh), the Helm
// chart (helm/kernelgate) and the systemd unit (systemd/), and the tests
// that build, render, install and verify them. It has no Go code of its own.
package deploy
