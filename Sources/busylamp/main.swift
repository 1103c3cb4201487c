print("busylamp")
