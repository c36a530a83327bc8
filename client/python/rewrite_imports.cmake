# cmake -DFILES=a.py;b.py -DPACKAGE=pkg._proto -DROOTS=gemserve;grpc -P rewrite_imports.cmake
#
# Makes the modules generated under PACKAGE work as its subpackages (see CMakeLists.txt):
# - `from ROOT.x.y import m_pb2` (the *_pb2_grpc modules) becomes
#   `from PACKAGE.ROOT.x.y import m_pb2`;
# - the module name the *_pb2 modules give their message classes, 'ROOT.x.y.m_pb2'
#   (BuildTopDescriptorsAndMessages), becomes 'PACKAGE.ROOT.x.y.m_pb2', so that the
#   classes' __module__ is importable (pickle, repr).
# `import grpc` (grpcio itself) is left alone: only *_pb2 modules under ROOTS are touched.
# Fails if an absolute import of a generated module is left over.
string(REPLACE ";" "|" roots "${ROOTS}")
foreach(file ${FILES})
  file(READ ${file} text)
  string(REGEX REPLACE "(^|\n)from ((${roots})\\.[A-Za-z0-9_.]+) import ([A-Za-z0-9_]+_pb2)"
         "\\1from ${PACKAGE}.\\2 import \\4" text "${text}")
  string(REGEX REPLACE "'((${roots})\\.[A-Za-z0-9_.]+_pb2)'" "'${PACKAGE}.\\1'" text "${text}")
  string(REGEX MATCH "(^|\n)(from (${roots})\\.[A-Za-z0-9_.]+ import [A-Za-z0-9_]+_pb2|import (${roots})\\.[A-Za-z0-9_.]+_pb2)"
         left "${text}")
  if(left)
    message(FATAL_ERROR "${file}: an absolute import of a generated module is left:${left}")
  endif()
  file(WRITE ${file} "${text}")
endforeach()
