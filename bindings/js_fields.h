// Reading typed fields out of JS objects with errors that name the field.
#pragma once

#include <napi.h>

#include <string>
#include <vector>

namespace mixattn::js {

inline Napi::Value field(const Napi::Object& o, const char* name, const std::string& path) {
  Napi::Value v = o.Get(name);
  if (v.IsUndefined()) throw Napi::TypeError::New(o.Env(), path + "." + name + " is missing");
  return v;
}

inline double number(const Napi::Object& o, const char* name, const std::string& path) {
  Napi::Value v = field(o, name, path);
  if (!v.IsNumber()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be a number");
  return v.As<Napi::Number>().DoubleValue();
}

inline int integer(const Napi::Object& o, const char* name, const std::string& path) {
  double d = number(o, name, path);
  if (d != double(int(d)))
    throw Napi::TypeError::New(o.Env(), path + "." + name + " must be an integer");
  return int(d);
}

inline bool boolean(const Napi::Object& o, const char* name, const std::string& path) {
  Napi::Value v = field(o, name, path);
  if (!v.IsBoolean()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

inline std::string string(const Napi::Object& o, const char* name, const std::string& path) {
  Napi::Value v = field(o, name, path);
  if (!v.IsString()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

inline Napi::Object object(const Napi::Object& o, const char* name, const std::string& path) {
  Napi::Value v = field(o, name, path);
  if (!v.IsObject()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be an object");
  return v.As<Napi::Object>();
}

inline Napi::Array array(const Napi::Object& o, const char* name, const std::string& path) {
  Napi::Value v = field(o, name, path);
  if (!v.IsArray()) throw Napi::TypeError::New(o.Env(), path + "." + name + " must be an array");
  return v.As<Napi::Array>();
}

// Copies an Int32Array value; `what` names it in the error.
inline std::vector<int32_t> int32s(const Napi::Value& v, const std::string& what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_int32_array)
    throw Napi::TypeError::New(v.Env(), what + " must be an Int32Array");
  auto a = v.As<Napi::Int32Array>();
  return std::vector<int32_t>(a.Data(), a.Data() + a.ElementLength());
}

// Copies an Int32Array field.
inline std::vector<int32_t> int32s(const Napi::Object& o, const char* name, const std::string& path) {
  return int32s(field(o, name, path), path + "." + name);
}

}  // namespace mixattn::js
