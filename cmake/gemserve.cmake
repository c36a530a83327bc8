# Project-wide helpers.

# gemserve_warnings(target): the warning set every gemserve target compiles with.
function(gemserve_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wnon-virtual-dtor)
endfunction()

# Link feature NO_AS_NEEDED: `$<LINK_LIBRARY:NO_AS_NEEDED,gemserve::ops>` keeps a shared
# library that is used only through static initializers (operator registration) even
# where the linker defaults to --as-needed.
set(CMAKE_LINK_LIBRARY_USING_NO_AS_NEEDED
    "LINKER:--push-state,--no-as-needed" "<LINK_ITEM>" "LINKER:--pop-state")
set(CMAKE_LINK_LIBRARY_USING_NO_AS_NEEDED_SUPPORTED TRUE)

# True when the LibTorch found was built with CUDA.
if(TORCH_CUDA_LIBRARIES OR TARGET torch_cuda)
  set(GEMSERVE_TORCH_HAS_CUDA TRUE)
else()
  set(GEMSERVE_TORCH_HAS_CUDA FALSE)
endif()
