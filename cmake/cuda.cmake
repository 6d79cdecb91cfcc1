# The CUDA backend (native/cuda). Built when nvcc and the cuBLASLt header are found
# (MIXATTN_CUDA=AUTO) or required (ON); OFF skips it.
#
# cuBLAS is looked up in the toolkit and under CUBLAS_ROOT (cache variable, or the environment
# variable of that name): the pip wheel `nvidia-cublas` lays it out as
# site-packages/nvidia/cu13/{include,lib}. scripts/build-native.mjs installs that wheel into
# build/cublas-venv when the toolkit has no cuBLAS and passes -DCUBLAS_ROOT.
#
# cuBLASLt is not linked: native/cuda/cublaslt_loader.cc dlopen()s it the first time a CUDA
# backend is created, trying the library found here (MIXATTN_CUBLASLT_PATH, an absolute path)
# and then the loader's search path. So the addon loads, and the CPU backend works, on a
# machine without a GPU, a driver or cuBLAS; only createBackend('cuda') reports what is
# missing. (Linking would put the 540 MB libcublasLt into every load of the addon and make
# the whole addon fail to load when the wheel's folder moves.) cudart is linked statically;
# it loads the driver (libcuda) itself, lazily, at the first CUDA call.
set(MIXATTN_HAVE_CUDA OFF)
set(CUBLAS_ROOT "$ENV{CUBLAS_ROOT}" CACHE PATH "Folder with include/cublasLt.h and lib/libcublasLt.so* (e.g. the nvidia-cublas wheel's nvidia/cu13)")
# sm_80 (A100-class) and sm_90a (Hopper, with the wgmma prefill path) as machine code, plus
# compute_90 PTX so newer GPUs can JIT the portable (mma.sync) kernels.
set(MIXATTN_CUDA_ARCHS "80-real;90a-real;90-virtual" CACHE STRING "CUDA architectures of the CUDA backend")

if(NOT MIXATTN_CUDA STREQUAL "OFF")
  include(CheckLanguage)
  check_language(CUDA)
  set(_mixattn_why "")
  if(NOT CMAKE_CUDA_COMPILER)
    set(_mixattn_why "no CUDA compiler (nvcc) was found")
  else()
    find_package(CUDAToolkit QUIET)
    # Searched afresh on every configure (not cached), so a changed CUBLAS_ROOT takes effect.
    unset(MIXATTN_CUBLASLT_INCLUDE CACHE)
    unset(MIXATTN_CUBLASLT_LIB CACHE)
    set(_hints_inc "")
    set(_hints_lib "")
    if(CUBLAS_ROOT)
      list(APPEND _hints_inc "${CUBLAS_ROOT}/include")
      list(APPEND _hints_lib "${CUBLAS_ROOT}/lib" "${CUBLAS_ROOT}/lib64")
    endif()
    if(CUDAToolkit_FOUND)
      list(APPEND _hints_inc ${CUDAToolkit_INCLUDE_DIRS})
      list(APPEND _hints_lib ${CUDAToolkit_LIBRARY_DIR})
    endif()
    find_path(MIXATTN_CUBLASLT_INCLUDE cublasLt.h HINTS ${_hints_inc} NO_DEFAULT_PATH)
    find_file(MIXATTN_CUBLASLT_LIB NAMES libcublasLt.so libcublasLt.so.13 libcublasLt.so.12
              HINTS ${_hints_lib} NO_DEFAULT_PATH)
    if(NOT CUDAToolkit_FOUND)
      set(_mixattn_why "nvcc was found but not the CUDA toolkit's runtime (cudart)")
    elseif(NOT MIXATTN_CUBLASLT_INCLUDE)
      set(_mixattn_why "cublasLt.h was found neither in the CUDA toolkit nor under CUBLAS_ROOT ('${CUBLAS_ROOT}'); `pip install nvidia-cublas` and pass -DCUBLAS_ROOT=<site-packages>/nvidia/cu13")
    endif()
  endif()
  if(_mixattn_why STREQUAL "")
    enable_language(CUDA)
    set(MIXATTN_HAVE_CUDA ON)
  elseif(MIXATTN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MIXATTN_CUDA=ON but ${_mixattn_why}")
  else()
    message(STATUS "mixattn: building the CPU backend only: ${_mixattn_why}")
  endif()
endif()

if(MIXATTN_HAVE_CUDA)
  file(GLOB MIXATTN_CUDA_SOURCES CONFIGURE_DEPENDS native/cuda/*.cu native/cuda/*.cc)
  add_library(mixattn_cuda STATIC ${MIXATTN_CUDA_SOURCES})
  # sm_80 (A100-class) and sm_90 (Hopper): the users' targets.
  set_target_properties(mixattn_cuda PROPERTIES CUDA_ARCHITECTURES "${MIXATTN_CUDA_ARCHS}"
                        CUDA_SEPARABLE_COMPILATION OFF POSITION_INDEPENDENT_CODE ON)
  target_include_directories(mixattn_cuda PUBLIC native)
  target_include_directories(mixattn_cuda PRIVATE ${MIXATTN_CUBLASLT_INCLUDE})
  target_compile_options(mixattn_cuda PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--expt-relaxed-constexpr -Xptxas=-warn-spills>
    $<$<COMPILE_LANGUAGE:CXX>:-O3 -Wall -Wextra -Wno-unused-parameter>)
  if(MIXATTN_CUBLASLT_LIB)
    get_filename_component(_lt_real "${MIXATTN_CUBLASLT_LIB}" REALPATH)
    target_compile_definitions(mixattn_cuda PRIVATE MIXATTN_CUBLASLT_PATH="${_lt_real}")
  endif()
  target_link_libraries(mixattn_cuda PUBLIC mixattn_core CUDA::cudart_static ${CMAKE_DL_LIBS})
  target_compile_definitions(mixattn_cuda PUBLIC MIXATTN_WITH_CUDA=1)
  target_link_libraries(${PROJECT_NAME} PRIVATE mixattn_cuda)
  message(STATUS "mixattn: CUDA backend enabled (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, "
                 "archs ${MIXATTN_CUDA_ARCHS}, cuBLASLt ${MIXATTN_CUBLASLT_INCLUDE}, "
                 "library ${MIXATTN_CUBLASLT_LIB})")
endif()
