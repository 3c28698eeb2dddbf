// Package bench is kernelgate's load harness: it drives any
// Enterprise-Gateway-compatible URL (kernelgate, Enterprise Gateway, Kernel
// Gateway, a plain Jupyter Server) and measures start latency, round trips
// and throughput, and reports as text, JSON or one self-contained HTML page
// of charts (uPlot, from internal/uplot, inlined). Its synthetic kernel lives
// in bench/synthkernel.
package bench
