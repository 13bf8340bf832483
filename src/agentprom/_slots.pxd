# Slots of Python classes from C: where a slots class keeps each field in its instances, and reading
# and writing them there. Shared by the compiled parts (receiver/_wire.pyx, conventions/_classify.pyx,
# context/_batch.pyx, sessions/_spans.pyx), which fill or read objects of classes defined in
# Python (model.Span, classify.Classified, context.tree.Tree, sessions.model.Session) without calling their
# Python code.

from cpython.ref cimport PyObject, Py_DECREF, Py_INCREF, Py_XDECREF

cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef *d_member
    ctypedef struct PyTypeObject:
        pass
    PyObject* PyType_GenericAlloc(PyTypeObject*, Py_ssize_t)
    int T_OBJECT_EX
    int READONLY


cdef inline list slot_offsets(cls, tuple names):
    """Where each field ``names`` of the slots class ``cls`` sits in its instances (and in its
    subclasses'): ``ValueError`` unless every one is a writable object slot and ``cls`` has no
    ``__dict__``."""
    cdef PyMemberDescrObject* member
    import types
    if cls.__dictoffset__:
        raise ValueError(f"{cls.__name__} is not a slots class")
    offsets = []
    for name in names:
        descriptor = cls.__dict__.get(name)
        if type(descriptor) is not types.MemberDescriptorType:
            raise ValueError(f"{cls.__name__}.{name} is not a slot")
        member = <PyMemberDescrObject*>descriptor
        if member.d_member.type != T_OBJECT_EX or member.d_member.flags & READONLY:
            raise ValueError(f"{cls.__name__}.{name} is not a writable object slot")
        offsets.append(member.d_member.offset)
    return offsets


cdef inline void store_offsets(Py_ssize_t* into, Py_ssize_t n, list offsets) except *:
    """Copy ``slot_offsets``' list into a C array of ``n`` (a configure's tables)."""
    cdef Py_ssize_t i
    if len(offsets) != n:
        raise ValueError(f"{len(offsets)} slot offsets for a table of {n}")
    for i in range(n):
        into[i] = offsets[i]


cdef inline PyObject** slot(PyObject* obj, Py_ssize_t offset) noexcept:
    """Where the slot at ``offset`` of ``obj`` holds its value (NULL while unset)."""
    return <PyObject**>((<char*>obj) + offset)


cdef inline object read_slot(object obj, Py_ssize_t offset):
    """A slot's value (``AttributeError`` while unset, as Python's read). ``obj`` must be of the class
    (or a subclass of it) whose offsets these are: the caller checks its type."""
    cdef PyObject* value = slot(<PyObject*>obj, offset)[0]
    if value == NULL:
        raise AttributeError(f"a slot of {type(obj).__name__} is unset")
    return <object>value


cdef inline bint all_of(object items, object cls) except -1:
    """Whether every item of the sequence ``items`` is exactly of class ``cls`` (not a subclass: one
    could override a slot with a property, which a read by offset would go around)."""
    cdef Py_ssize_t i
    for i in range(len(items)):
        if type(items[i]) is not cls:
            return False
    return True


cdef inline object allocated(object cls):
    """A new instance of the slots class ``cls`` with every slot empty, made without calling its
    ``__init__``: the caller fills each slot (``fill_slot``) before anything else sees it."""
    cdef PyObject* obj = PyType_GenericAlloc(<PyTypeObject*>cls, 0)
    if obj == NULL:
        raise MemoryError()
    out = <object>obj  # takes a reference of its own: give back the allocation's
    Py_DECREF(out)
    return out


cdef inline void fill_slot(PyObject* obj, Py_ssize_t offset, object value) noexcept:
    """Set a slot of a new object, still empty (nothing to give back)."""
    Py_INCREF(value)
    slot(obj, offset)[0] = <PyObject*>value


cdef inline void put_slot(PyObject* obj, Py_ssize_t offset, object value) noexcept:
    """Set a slot, giving back the value it held, if any."""
    cdef PyObject** place = slot(obj, offset)
    cdef PyObject* old = place[0]
    Py_INCREF(value)
    place[0] = <PyObject*>value
    Py_XDECREF(old)
