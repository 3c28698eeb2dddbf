// Package kernelspecs finds and parses Jupyter kernelspecs.
//
// Discovery follows Jupyter: every JUPYTER_PATH entry, the user data dir,
// then the system dirs, each searched for kernels/<name>/kernel.json; the
// first directory that has a name wins and names are lower-cased. A Cache
// keeps the parsed specs in memory as an immutable snapshot that readers
// load without locks, and reloads it in the background when the directories
// change. Nothing here launches a kernel.
package kernelspecs
