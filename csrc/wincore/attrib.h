/* attrib.h: the Ipv4Attributor type of egress._wincore (attrib.c). */
#ifndef EGRESS_WINCORE_ATTRIB_H
#define EGRESS_WINCORE_ATTRIB_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Add the Ipv4Attributor type to module; -1 with an exception set. */
int attrib_register(PyObject *module);

#endif
