// An empty Python module: `import inplace_ttt._C` loads this library, whose static initialisers
// register the ops (ops.cpp) with torch's dispatcher.
#include <Python.h>

static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "inplace_ttt's torch.library ops", -1, nullptr};

PyMODINIT_FUNC PyInit__C(void) { return PyModule_Create(&module_def); }
