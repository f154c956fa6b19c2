"""losses/softmax"""
