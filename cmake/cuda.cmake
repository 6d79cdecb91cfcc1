# The CUDA backend (native/cuda). Compiled when nvcc is found (MIXATTN_CUDA=AUTO) or
# required (ON). cuBLAS is looked up in the toolkit and in CUBLAS_ROOT (the pip wheel
# `nvidia-cublas` puts it under site-packages/nvidia/cu13).
set(MIXATTN_HAVE_CUDA OFF)
if(NOT MIXATTN_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER)
    enable_language(CUDA)
    set(MIXATTN_HAVE_CUDA ON)
  elseif(MIXATTN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MIXATTN_CUDA=ON but no CUDA compiler (nvcc) was found")
  else()
    message(STATUS "mixattn: nvcc not found, building the CPU backend only")
  endif()
endif()

if(MIXATTN_HAVE_CUDA)
  find_package(CUDAToolkit REQUIRED)
  file(GLOB MIXATTN_CUDA_SOURCES CONFIGURE_DEPENDS native/cuda/*.cu native/cuda/*.cc)
  add_library(mixattn_cuda STATIC ${MIXATTN_CUDA_SOURCES})
  # sm_80 (A100-class) and sm_90 (Hopper): the users' targets.
  set_target_properties(mixattn_cuda PROPERTIES CUDA_ARCHITECTURES "80;90"
                        CUDA_SEPARABLE_COMPILATION OFF POSITION_INDEPENDENT_CODE ON)
  target_include_directories(mixattn_cuda PUBLIC native)
  target_link_libraries(mixattn_cuda PUBLIC CUDA::cudart_static)
  target_compile_definitions(mixattn_cuda PUBLIC MIXATTN_WITH_CUDA=1)
  target_link_libraries(${PROJECT_NAME} PRIVATE mixattn_cuda)
  message(STATUS "mixattn: CUDA backend enabled (nvcc ${CMAKE_CUDA_COMPILER_VERSION})")
endif()
