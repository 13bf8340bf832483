# Attribute keys from C: whether a span's attributes carry any of a few keys. Shared by the compiled parts
# that decide from a span's attributes whether a rare rule applies (context/_batch.pyx, sessions/_spans.pyx).

from cpython.dict cimport PyDict_Contains, PyDict_Next, PyDict_Size
from cpython.ref cimport PyObject
from cpython.set cimport PySet_Contains


cdef inline bint disjoint(object attrs, object keys) except -1:
    """``attrs.keys().isdisjoint(keys)``: a dict's keys against a frozenset, the smaller walked."""
    cdef Py_ssize_t position = 0
    cdef PyObject* key
    cdef PyObject* value
    if type(attrs) is not dict or type(keys) is not frozenset:
        return attrs.keys().isdisjoint(keys)
    if PyDict_Size(attrs) <= len(keys):
        while PyDict_Next(attrs, &position, &key, &value):
            if PySet_Contains(keys, <object>key):
                return False
        return True
    for name in keys:
        if PyDict_Contains(attrs, name):
            return False
    return True
